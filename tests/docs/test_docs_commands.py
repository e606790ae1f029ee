"""Every command in the docs runs, for real, and does what the docs say (issue 7).

The ``bash`` and ``python`` blocks of README.md and docs/*.md (``doc_blocks.py``) run in
a user's project: a copy of the repository installed by the README's own set-up command
(``readme_env.py``, once per session; issue 10: never the developers' environment, so
a dependency the docs forget to install fails here as it would for a reader), against
a fake Binance on loopback, in document order, over a lake that a real backfill
prepared with the dates the docs read (2024-01-01..) — the 2026-11-01.. data come from
the docs' own ``dagster asset materialize``. Each command must exit 0 (or its documented code), and
where the docs promise something (a file with rows, a dataset listed, a hole found,
a run that succeeds) the check below compares it with the fake's known truth or with
the lake.

The README's two commands: its main command's ``dagster dev`` part runs verbatim
(``dagster_dev.py``, once, after the pages) until the UI's GraphQL lists the example
catalog's assets and its daemon has run the job that operating.md's ``dagster job
launch`` queued ("the daemon, or ``dagster dev``, runs it"); the CLI commands run
before it, not competing with it for the CPU. Its test command is what ``.ci/run``
runs, read from the README at CI time; here we only check that ``.ci/run`` does so.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from aiohttp import web

from dccd_core.domain import DatasetKey, to_ns
from dccd_core.storage import Store
from tests.docs.dagster_dev import DagsterDev, dev_part
from tests.docs.doc_blocks import (
    DOC_PATHS,
    REPO,
    bash_commands,
    doc_blocks,
    readme_main_command,
    readme_test_command,
)
from tests.docs.doc_project import CommandResult, ProgramResult, UserProject
from tests.docs.readme_env import ReadmeCheckout, clean_env
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve_in_thread

OHLC_1M = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
OHLC_1H = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
KRAKEN_1H = DatasetKey.of("kraken", "BTC/USD", "ohlc", "1h")
# What the prepared lake holds before any doc runs (the docs read from 2024-01-01).
PREPARED_1M = ("2024-01-01", "2024-01-03")
PREPARED_TRADES = ("2024-01-01", "2024-01-02")
OHLC_CSV_HEADER = "ts,open,high,low,close,volume,quote_volume,trades"

# --- the documented commands ----------------------------------------------------------


def _is_main_command(command: str) -> bool:
    return "dagster dev" in command


def _is_test_command(command: str) -> bool:
    return "pytest" in command


ALL_BLOCKS = {doc: doc_blocks(doc) for doc in DOC_PATHS}


def _documented() -> Iterator[tuple[str, str]]:
    """(kind, text) of every command and program of the docs."""
    for blocks in ALL_BLOCKS.values():
        for block in blocks:
            if block.lang == "bash":
                for command in bash_commands(block):
                    yield "bash", command
            elif block.lang == "python":
                yield "python", block.text


# --- the world the commands run in -----------------------------------------------------


@dataclass
class World:
    """The project, the fake exchange (the truth) and what earlier pages did."""

    project: UserProject
    fake: FakeBinance
    done: set[str] = field(default_factory=set)

    @property
    def store(self) -> Store:
        return Store(self.project.lake)

    def truth_candles(self, start: str, end: str, span: str = "1m") -> pl.DataFrame:
        return self.fake.truth_candles(to_ns(start), to_ns(end), span)

    def truth_trades(self, start: str, end: str) -> pl.DataFrame:
        return self.fake.truth_trades(to_ns(start), to_ns(end))

    def lake_rows(self, key: DatasetKey, start: str | None = None) -> int:
        return self.store.read(key, start, None).height


def _v3_ohlc() -> pl.DataFrame:
    """A dccd v3 file's rows (``TS`` in ns), as dccd 3.x's ParquetStore wrote them."""
    t0 = to_ns("2024-01-01")
    return pl.DataFrame(
        {
            "TS": [t0 + i * 3_600 * 10**9 for i in range(24)],
            "open": [40_000.0 + i for i in range(24)],
            "high": [40_010.0 + i for i in range(24)],
            "low": [39_990.0 + i for i in range(24)],
            "close": [40_005.0 + i for i in range(24)],
            "volume": [1.5 * i for i in range(24)],
        }
    )


def _write_v3_dir(root: Path) -> None:
    folder = root / "kraken" / "ohlc" / "BTC-USD" / "1h"
    folder.mkdir(parents=True)
    _v3_ohlc().write_parquet(folder / "2024.parquet")


_PREPARE = f"""
import asyncio
from dccd_core import backfill
from dccd_core.domain import DatasetKey

async def main():
    await asyncio.gather(
        backfill(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m"),
                 start="{PREPARED_1M[0]}", end="{PREPARED_1M[1]}"),
        backfill(DatasetKey.of("binance", "BTC/USDT", "trades"),
                 start="{PREPARED_TRADES[0]}", end="{PREPARED_TRADES[1]}"),
    )

asyncio.run(main())
"""


async def _quiet_stream(request: web.Request) -> web.WebSocketResponse:
    """Binance's combined stream of a market where nothing trades: accepts, stays silent.

    ``dagster dev`` starts the example catalog's trade stream; against a WebSocket that
    answers it stays one idle run instead of a run failing and restarting in a loop.
    """
    ws = web.WebSocketResponse(heartbeat=None)
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


def _app_with_quiet_stream(fake: FakeBinance) -> web.Application:
    app = fake.app()
    app.router.add_get("/stream", _quiet_stream)
    return app


@pytest.fixture(scope="module")
def fake() -> FakeBinance:
    exchange = FakeBinance.default(listing_ms=to_ns("2023-12-01") // 1_000_000)
    for market in exchange.markets.values():
        market.den = 1_000  # one trade a second: a day is 86k trades, quick to fetch
    return exchange


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeBinance, readme_checkout: ReadmeCheckout
) -> Iterator[World]:
    with serve_in_thread(lambda: _app_with_quiet_stream(fake)) as origin:
        project = UserProject.create(
            tmp_path_factory.mktemp("docs"), binance_origin=origin, checkout=readme_checkout.root
        )
        prepared = project.run_python_source(_PREPARE)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        _write_v3_dir(project.home / "dccd_data")  # README: dccd import-v3 ~/dccd_data
        _write_v3_dir(project.root / "v3_data")  # migrating-v3.md: dccd import-v3 ./v3_data
        yield World(project, fake)


@pytest.fixture(scope="module")
def dagster_dev(world: World) -> Iterator[DagsterDev]:
    """The README's main command, its ``dagster dev`` part verbatim, up until the end."""
    dev = DagsterDev.start(world.project, dev_part(readme_main_command()))
    try:
        yield dev
    finally:
        seconds, killed = dev.stop(grace_s=20)
        print(f"dagster dev stopped in {seconds:.1f} s ({'SIGKILL' if killed else 'SIGTERM'})")


# --- what the docs promise, command by command ----------------------------------------

Checker = Callable[[Any, World], None]


@dataclass(frozen=True)
class Check:
    """``pattern`` (a regex) selects documented commands or programs; ``check`` asserts."""

    kind: str  # "bash" | "python"
    pattern: str
    check: Checker
    code: int = 0

    def matches(self, kind: str, text: str) -> bool:
        return kind == self.kind and re.search(self.pattern, text) is not None


def _out(result: CommandResult | ProgramResult) -> str:
    return result.stdout + result.stderr


def _read_csv_text(text: str) -> pl.DataFrame:
    from io import StringIO

    return pl.read_csv(StringIO(text))


def _same_candles(got: pl.DataFrame, truth: pl.DataFrame) -> None:
    assert got.height == truth.height > 0
    assert got["ts"].to_list() == truth["ts"].to_list()
    assert got["close"].to_list() == truth["close"].to_list()


def check_inventory(r: CommandResult, w: World) -> None:
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["exchange", "symbol", "type", "span"], r.stdout
    listed = {tuple(line.split()[:4]) for line in lines[1:]}
    assert ("binance", "BTC/USDT", "ohlc", "1m") in listed, r.stdout
    assert ("binance", "BTC/USDT", "trades", "-") in listed, r.stdout


def check_csv_2024_day(r: CommandResult, w: World) -> None:
    assert r.stdout.startswith(OHLC_CSV_HEADER + "\n"), r.stdout[:300]
    _same_candles(_read_csv_text(r.stdout), w.truth_candles("2024-01-01", "2024-01-02"))


def check_table_2024_day(r: CommandResult, w: World) -> None:
    rows = w.truth_candles("2024-01-01", "2024-01-02").height
    assert r.stdout.startswith(f"{OHLC_1M}: {rows} rows"), r.stdout[:300]


def check_csv_file(name: str, start: str, end: str | None) -> Checker:
    def check(r: CommandResult, w: World) -> None:
        path = w.project.root / name
        assert path.is_file(), f"{name} was not written"
        got = pl.read_csv(path)
        if end is not None:
            _same_candles(got, w.truth_candles(start, end))
        else:  # up to now: everything the lake holds from ``start``
            assert got.height == w.lake_rows(OHLC_1M, start) > 0
        assert f"wrote {got.height} rows to {name}" in r.stderr

    return check


def check_trades_parquet(r: CommandResult, w: World) -> None:
    got = pl.read_parquet(w.project.root / "btc_trades.parquet")
    truth = w.truth_trades(*PREPARED_TRADES)
    assert got.height == truth.height > 0
    assert got["trade_id"].to_list() == truth["trade_id"].to_list()
    assert got["side"].to_list() == truth["side"].to_list()


def check_gaps_trades(r: CommandResult, w: World) -> None:
    # fetched: 2024-01-01 only, so the first hole starts where that day ends
    assert f"{TRADES}: 1 hole(s)" in r.stdout, r.stdout
    assert "2024-01-02T00:00:00Z  ->" in r.stdout, r.stdout


def check_gaps_ohlc_january(r: CommandResult, w: World) -> None:
    assert r.stdout.splitlines()[0].startswith(f"{OHLC_1M}: 1 hole(s)"), r.stdout
    assert f"{PREPARED_1M[1]}T00:00:00Z  ->  2024-02-01T00:00:00Z" in r.stdout, r.stdout


def check_validate(r: CommandResult, w: World) -> None:
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "ok: 8 datasets", r.stdout  # 2 symbols x (2 spans + trades + book)
    # then one line per dataset: what backs its history (the world's fake REST origin:
    # archive files not used without an archive_url)
    assert len(lines) == 9 and all(line.startswith("  binance ") for line in lines[1:])
    assert "  binance BTC/USDT book: no history to fetch (archives not used)" in lines


def check_import_v3(r: CommandResult, w: World) -> None:
    assert "imported 1 files, 24 rows read" in r.stdout, _out(r)
    lake = w.store.read(KRAKEN_1H)
    assert lake["ts"].to_list() == _v3_ohlc()["TS"].to_list()
    assert lake["close"].to_list() == _v3_ohlc()["close"].to_list()
    if "import-v3" in w.done:  # the same v3 data again: a re-import adds nothing
        assert r.stdout.rstrip().endswith("0 new rows"), r.stdout
    w.done.add("import-v3")


def check_materialized(r: CommandResult, w: World) -> None:
    assert "RUN_SUCCESS" in _out(r), _out(r)[-3000:]
    got = w.store.read(OHLC_1M, "2026-11-01", "2026-11-03")  # partitions 11-01 and 11-02
    _same_candles(got, w.truth_candles("2026-11-01", "2026-11-03"))


def check_export(r: CommandResult, w: World) -> None:
    assert r.stdout == r.stderr == ""


def check_bad_symbol_exit_2(r: CommandResult, w: World) -> None:
    assert r.stdout.strip() == "exit code 2", _out(r)
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def check_read_extras(r: CommandResult, w: World) -> None:
    for module in ("duckdb", "pandas"):
        probe = w.project.run_python_source(f"import {module}")
        assert probe.returncode == 0, f"{module} not installed by `{r.command}`: {probe.stderr}"


def check_job_launched(r: CommandResult, w: World) -> None:
    # `dagster dev` is not up yet: the run waits in the instance's queue, and the daemon
    # of `dagster dev` runs it (test_readme_main_command_serves_the_catalog awaits it)
    w.done.add("job-launch")


def check_schedule_list(r: CommandResult, w: World) -> None:
    assert "Schedule: binance__ohlc__btc_usdt_1m__update" in r.stdout, r.stdout
    assert "*/15 * * * *" in r.stdout


def check_sensor_list(r: CommandResult, w: World) -> None:
    assert "Sensor: binance__trades__stream_sensor" in r.stdout, r.stdout


def check_definitions_validate(r: CommandResult, w: World) -> None:
    assert "All code locations passed validation" in _out(r), _out(r)[-2000:]


def check_pool_limit(r: CommandResult, w: World) -> None:
    assert "Set concurrency limit for dccd_kraken to 1." in r.stdout, _out(r)


def check_py_df_january(p: ProgramResult, w: World) -> None:
    assert p.tables["df"] == w.truth_candles(*PREPARED_1M).height


def check_py_polars_btc(p: ProgramResult, w: World) -> None:
    # the README's one-liner: every BTC-USDT candle of every exchange and span
    expected = sum(
        i.rows
        for i in w.store.inventory()
        if i.key.data_type.value == "ohlc" and str(i.key.symbol) == "BTC/USDT"
    )
    assert p.tables["_"] == expected > 0, p.stdout


def check_py_duckdb(p: ProgramResult, w: World) -> None:
    assert "binance" in p.stdout and "BTC-USDT" in p.stdout and "1m" in p.stdout, p.stdout


def check_py_print_november(p: ProgramResult, w: World) -> None:
    rows = w.truth_candles("2026-11-01", "2026-11-02").height
    assert f"shape: ({rows:_}, 8)" in p.stdout, p.stdout


def check_py_backfill_1h(p: ProgramResult, w: World) -> None:
    assert "BackfillResult(" in p.stdout, p.stdout
    got = w.store.read(OHLC_1H, "2026-11-01", "2026-11-03")
    _same_candles(got, w.truth_candles("2026-11-01", "2026-11-03", "1h"))


def check_py_read_and_inventory(p: ProgramResult, w: World) -> None:
    assert p.tables["candles"] == w.truth_candles("2024-01-01", "2024-01-02").height
    for info in w.store.inventory():
        assert f"{info.key} {info.rows} " in p.stdout, (str(info.key), p.stdout)


def check_py_polars_lake(p: ProgramResult, w: World) -> None:
    assert p.tables["btc"] == w.lake_rows(OHLC_1M) > 0


def check_py_pandas_trades(p: ProgramResult, w: World) -> None:
    assert p.tables["trades"] == w.lake_rows(TRADES) > 0


def check_symbols_usdt(r: CommandResult, w: World) -> None:
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["symbol", "type", "base", "quote", "settle"], r.stdout
    listed = [line.split()[0] for line in lines[1:-1]]
    assert listed == ["BTC/USDT", "BTC/USDT:USDT", "ETH/USDT"], r.stdout  # the fake's
    assert lines[-1].startswith("3 markets (from "), r.stdout


def check_status_stale(r: CommandResult, w: World) -> None:
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["exchange", "symbol", "type", "span", "state"], r.stdout
    states = {tuple(line.split()[:4]): line.split()[4] for line in lines[1:-1]}
    assert states[("binance", "BTC/USDT", "ohlc", "1m")] == "stale", r.stdout  # Nov 2026
    assert states[("binance", "ETH/USDT", "ohlc", "1m")] == "missing", r.stdout
    assert " stale, " in lines[-1] and "(stale after 2h;" in lines[-1], r.stdout


def check_backfill_1h_week(r: CommandResult, w: World) -> None:
    got = w.store.read(OHLC_1H, "2024-01-01", "2024-01-08")
    _same_candles(got, w.truth_candles("2024-01-01", "2024-01-08", "1h"))
    assert r.stdout.startswith(f"{OHLC_1H}: {got.height} rows fetched"), r.stdout


def check_py_ensure(p: ProgramResult, w: World) -> None:
    assert p.tables["df"] == w.truth_candles("2024-01-02", "2024-01-04").height
    assert w.store.holes(OHLC_1M, "2024-01-01", "2024-01-04") == []


CHECKS: tuple[Check, ...] = (
    # bash
    Check("bash", r"\bdccd inventory$", check_inventory),
    Check(
        "bash",
        r"dccd read binance BTC/USDT ohlc --span 1m --start 2024-01-01 "
        r"--end 2024-01-02 --format csv$",
        check_csv_2024_day,
    ),
    Check(
        "bash",
        r"dccd read binance BTC/USDT ohlc --span 1m --start 2024-01-01 "
        r"--end 2024-01-02$",
        check_table_2024_day,
    ),
    Check(
        "bash",
        r"--start 2026-11-01 --end 2026-11-02 --format csv -o btc_1m\.csv$",
        check_csv_file("btc_1m.csv", "2026-11-01", "2026-11-02"),
    ),
    Check(
        "bash",
        r"ohlc --span 1m --start 2024-01-01 --format csv -o btc_1m\.csv$",
        check_csv_file("btc_1m.csv", "2024-01-01", None),
    ),
    Check("bash", r"trades .*--format parquet -o btc_trades\.parquet$", check_trades_parquet),
    Check("bash", r"dccd gaps binance BTC/USDT trades --start 2024-01-01$", check_gaps_trades),
    Check(
        "bash",
        r"dccd gaps binance BTC/USDT ohlc --span 1m --start 2024-01-01 "
        r"--end 2024-02-01$",
        check_gaps_ohlc_january,
    ),
    Check("bash", r"\bdccd validate dccd\.yaml$", check_validate),
    Check("bash", r"\bdccd import-v3 ", check_import_v3),
    Check("bash", r"^export DAGSTER_HOME=", check_export),
    Check(
        "bash",
        r"dagster asset materialize .*--select binance/ohlc/btc_usdt_1m "
        r"--partition-range 2026-11-01\.\.\.2026-11-02$",
        check_materialized,
    ),
    Check("bash", r"BTCUSDT .*\|\| echo \"exit code \$\?\"$", check_bad_symbol_exit_2),
    Check("bash", r"^\.venv/bin/pip install -e '\.\[duckdb,pandas\]'$", check_read_extras),
    Check("bash", r"^dagster job launch .*-j binance__ohlc__btc_usdt_1m", check_job_launched),
    Check("bash", r"^dagster schedule list", check_schedule_list),
    Check("bash", r"^dagster sensor list", check_sensor_list),
    Check("bash", r"^dagster definitions validate", check_definitions_validate),
    Check("bash", r"^dagster instance concurrency set dccd_kraken 1$", check_pool_limit),
    Check("bash", r"^dccd symbols binance --quote USDT$", check_symbols_usdt),
    Check("bash", r"^dccd status --catalog dccd\.yaml --stale-after 2h$", check_status_stale, 1),
    Check(
        "bash",
        r"^dccd backfill binance BTC/USDT ohlc --span 1h --start 2024-01-01 --end 2024-01-08$",
        check_backfill_1h_week,
    ),
    # python
    Check(
        "python",
        r'df = dccd_core\.read\(.*start="2024-01-01", end="2024-02-01"\)',
        check_py_df_january,
    ),
    Check(
        "python",
        r'scan_parquet\("data/ohlc/\*\*/\*\.parquet", hive_partitioning=True\)'
        r'\.filter\(pl\.col\("symbol"\) == "BTC-USDT"\)\.collect\(\)',
        check_py_polars_btc,
    ),
    Check("python", r"duckdb\.sql\(", check_py_duckdb),
    Check(
        "python",
        r'print\(dccd_core\.read\(.*start="2026-11-01", end="2026-11-02"\)\)',
        check_py_print_november,
    ),
    Check(
        "python",
        r"backfill\(DatasetKey\.of\(\"binance\", \"BTC/USDT\", \"ohlc\", \"1h\"\)",
        check_py_backfill_1h,
    ),
    Check("python", r"for info in dccd_core\.inventory\(\)", check_py_read_and_inventory),
    Check("python", r"btc = \(\n\s+lake\.filter", check_py_polars_lake),
    Check("python", r"df = dccd_core\.ensure\(", check_py_ensure),
    Check(
        "python",
        r"pd\.read_parquet\(\"data/trades/exchange=binance/symbol=BTC-USDT\"\)",
        check_py_pandas_trades,
    ),
)


def _checks_for(kind: str, text: str) -> list[Check]:
    return [c for c in CHECKS if c.matches(kind, text)]


def _run_doc(doc: str, world: World) -> list[str]:
    """Run a page's blocks in order; return the failures (all of them, not the first)."""
    failures: list[str] = []
    for block in ALL_BLOCKS[doc]:
        if block.lang == "bash":
            commands = [
                c
                for c in bash_commands(block)
                if not _is_main_command(c) and not _is_test_command(c)
            ]
            if not commands:
                continue
            for result in world.project.run_bash(block, commands):
                print(f"{result.seconds:6.1f} s  {result.where}  {result.command}")
                checks = _checks_for("bash", result.command)
                failures += _verify(result, checks, world)
        elif block.lang == "python":
            program = world.project.run_python(block)
            print(f"{program.seconds:6.1f} s  {program.where}  python block")
            failures += _verify(program, _checks_for("python", block.text), world)
    return failures


def _verify(result: CommandResult | ProgramResult, checks: list[Check], world: World) -> list[str]:
    expected_code = checks[0].code if checks else 0
    if result.code != expected_code:
        return [f"expected exit code {expected_code}\n{result.describe()}"]
    failures = []
    for check in checks:
        try:
            check.check(result, world)
        except AssertionError as exc:
            failures.append(f"{check.check.__name__}: {exc}\n{result.describe()}")
    return failures


# --- the tests --------------------------------------------------------------------------


def test_the_readme_env_is_not_the_dev_env(readme_checkout: ReadmeCheckout) -> None:
    """The docs run where a README reader is: dccd from the checkout, no dev extra."""
    python = str(readme_checkout.bin / "python")
    where = subprocess.run(
        [python, "-c", "import dccd_core, sys; print(dccd_core.__file__); print(sys.prefix)"],
        capture_output=True, text=True, check=True, cwd="/", env=clean_env(),
    ).stdout.split()
    assert where == [
        str(readme_checkout.root / "dccd_core" / "__init__.py"),
        str(readme_checkout.root / ".venv"),
    ]
    dev_only = subprocess.run(
        [python, "-c", "import pytest"], capture_output=True, text=True, env=clean_env()
    )
    assert dev_only.returncode != 0 and "No module named 'pytest'" in dev_only.stderr


def test_every_check_matches_a_documented_command() -> None:
    """A check whose command left the docs is dead weight; say so."""
    documented = list(_documented())
    for check in CHECKS:
        assert any(check.matches(kind, text) for kind, text in documented), (
            f"no documented {check.kind} command matches {check.pattern!r}"
        )


def test_the_docs_have_commands_to_run() -> None:
    kinds = [kind for kind, _ in _documented()]
    assert kinds.count("bash") >= 20 and kinds.count("python") >= 9, kinds


def test_every_main_command_is_the_readme_one() -> None:
    """The quick start repeats the README's main command: the same line, run once below."""
    mains = [c for kind, c in _documented() if kind == "bash" and _is_main_command(c)]
    assert mains and set(mains) == {readme_main_command()}


def test_ci_runs_the_readme_test_command() -> None:
    """``.ci/run`` reads the README's test command and runs it (nothing to keep in sync)."""
    command = readme_test_command()
    assert "pytest" in command and command.startswith("python3 -m venv .venv")
    script = (REPO / ".ci" / "run").read_text()
    assert "python3 tests/docs/doc_blocks.py readme-test-command" in script
    assert "set -euo pipefail" in script and "rm -rf .venv" in script
    tests = [c for kind, c in _documented() if kind == "bash" and _is_test_command(c)]
    assert tests == [command]


@pytest.mark.parametrize("doc", DOC_PATHS)
def test_doc_commands(doc: str, world: World) -> None:
    failures = _run_doc(doc, world)
    assert not failures, "\n\n".join(failures)


_ASSETS = "{ assetNodes { assetKey { path } } }"
_RUNS = """{ runsOrError(filter: {pipelineName: "binance__ohlc__btc_usdt_1m"}) {
  __typename ... on Runs { results { runId status tags { key value } } } } }"""
_FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def _partition_runs(data: dict[str, Any], partition: str) -> list[dict[str, Any]]:
    runs = data["runsOrError"].get("results", [])
    return [r for r in runs if {"key": "dagster/partition", "value": partition} in r["tags"]]


def test_readme_main_command_serves_the_catalog(world: World, dagster_dev: DagsterDev) -> None:
    """The UI lists the example catalog's assets; its daemon runs the queued job launch."""
    data = dagster_dev.wait_for(
        _ASSETS,
        lambda d: (
            ["binance", "ohlc", "btc_usdt_1m"] in [n["assetKey"]["path"] for n in d["assetNodes"]]
        ),
        timeout_s=120,
        what="asset binance/ohlc/btc_usdt_1m in the UI",
    )
    keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
    assert {"binance/ohlc/btc_usdt_1h", "binance/trades/eth_usdt", "binance/book/btc_usdt"} <= keys
    if "job-launch" not in world.done:
        return  # run alone: operating.md's `dagster job launch` did not run
    runs = dagster_dev.wait_for(
        _RUNS,
        lambda d: any(r["status"] in _FINISHED for r in _partition_runs(d, "2026-11-01")),
        timeout_s=120,
        what="finished run of binance__ohlc__btc_usdt_1m for 2026-11-01 (docs/operating.md)",
    )
    statuses = [r["status"] for r in _partition_runs(runs, "2026-11-01")]
    assert statuses == ["SUCCESS"], f"{statuses}\n{dagster_dev.log_tail()}"
