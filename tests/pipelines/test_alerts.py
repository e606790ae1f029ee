"""Failure and stale-stream alerts, posted to a loopback webhook that records them."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
    job,
    op,
)
from dagster._core.test_utils import instance_for_test

from dccd_core.catalog import AlertSettings
from dccd_core.domain import DataType, Symbol
from dccd_core.storage import Store
from dccd_pipelines.alerts import (
    FAILURE_SENSOR_NAME,
    STALE_SENSOR_NAME,
    build_failure_alert_sensor,
    build_stale_stream_sensor,
    post_alert,
)
from dccd_pipelines.liveness import fail_dead_run, owned_by, write_run_alive
from dccd_pipelines.streams import STREAM_TAG, StreamSpec
from tests.core.storage.helpers import trades

JOB = "binance__ohlc__btc_usdt_1m"
OWNED = owned_by([JOB], [])
SPEC = StreamSpec("binance", DataType.TRADES, (Symbol.parse("BTC/USDT"),))


@dataclass
class Receiver:
    """A webhook on loopback: records every JSON body; answers ``status``."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    @property
    def texts(self) -> list[str]:
        return [p["text"] for p in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box[0].posts.append(json.loads(body))
            self.send_response(box[0].status)
            self.end_headers()
            self.wfile.write(b"ok" if box[0].status == 200 else b"no_service")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


@op
def _fetch() -> None:
    raise ValueError("binance answered HTTP 400: invalid symbol")


@job(name=JOB)
def _failing() -> None:
    _fetch()


@job(name="someone_elses_job")
def _foreign() -> None:
    _fetch()


def _failure_context(instance: DagsterInstance, run_id: str):  # type: ignore[no-untyped-def]
    run = instance.get_run_by_id(run_id)
    [record] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    assert run is not None and record.dagster_event is not None
    return build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR_NAME, dagster_event=record.dagster_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()


def test_a_failed_run_posts_one_message_naming_run_job_and_error(receiver: Receiver) -> None:
    sensor = build_failure_alert_sensor(AlertSettings(receiver.url), OWNED)
    with instance_for_test() as instance:
        failed = _failing.execute_in_process(instance=instance, raise_on_error=False,
                                             tags={"dagster/partition": "2024-01-02"})
        assert not failed.success
        sensor(_failure_context(instance, failed.run_id))
        assert receiver.posts == [{
            "text": f"dccd run {failed.run_id} of job {JOB}, partition 2024-01-02 failed: "
                    "step _fetch: ValueError: binance answered HTTP 400: invalid symbol"
        }]
        # a run of another code location's job is none of dccd's business
        other = _foreign.execute_in_process(instance=instance, raise_on_error=False)
        sensor(_failure_context(instance, other.run_id))
        assert len(receiver.posts) == 1


def test_a_dead_run_alert_says_why(receiver: Receiver) -> None:
    from dagster import AssetKey

    asset = AssetKey(["binance", "ohlc", "btc_usdt_1m"])
    sensor = build_failure_alert_sensor(AlertSettings(receiver.url), owned_by([], [asset]))
    with instance_for_test() as instance:
        run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED,
                                          asset_selection=frozenset({asset})))
        fail_dead_run(instance, run, "no sign of life for 130 s (timeout 120 s)")
        sensor(_failure_context(instance, run.run_id))
        [text] = receiver.texts
        assert text.startswith(f"dccd run {run.run_id} of job __ASSET_JOB "
                               "(binance/ohlc/btc_usdt_1m) failed: dccd: run ")
        assert "is dead: no sign of life for 130 s" in text


def test_a_failing_webhook_never_breaks_the_sensor(receiver: Receiver) -> None:
    warnings: list[str] = []
    receiver.status = 500
    assert not post_alert(receiver.url, "hello", warn=warnings.append)
    assert receiver.texts == ["hello"] and "HTTP 500: no_service" in warnings[0]
    # nobody listening at all
    assert not post_alert("http://127.0.0.1:9/hook", "hello", timeout_s=2, warn=warnings.append)
    assert "ConnectError" in warnings[1]
    sensor = build_failure_alert_sensor(AlertSettings("http://127.0.0.1:9/hook"), OWNED)
    with instance_for_test() as instance:
        failed = _failing.execute_in_process(instance=instance, raise_on_error=False)
        sensor(_failure_context(instance, failed.run_id))  # no exception


def _trades(ts: list[int]) -> pl.DataFrame:
    return trades([str(t) for t in ts], ts, price=100.0)


def test_a_stale_stream_is_reported_once_then_its_recovery(
    receiver: Receiver, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    key = SPEC.key(SPEC.symbols[0])
    old_ns = time.time_ns() - 3_600 * 10**9
    store.write(key, _trades([old_ns]))
    sensor = build_stale_stream_sensor(AlertSettings(receiver.url, stale_after_s=600),
                                       [SPEC], str(tmp_path))
    assert sensor.name == STALE_SENSOR_NAME
    with instance_for_test() as instance:
        # the newest stored trade is an hour old and no stream run is alive
        context = build_sensor_context(instance=instance)
        result = sensor(context)
        assert isinstance(result, SkipReason)
        [text] = receiver.texts
        assert re.match(rf"dccd stream {SPEC.name} is stale: last stored message 36\d\d s ago "
                        r"\(\d{4}-\d\d-\d\dT", text), text
        # the next ticks send nothing more (the cursor remembers)
        for _ in range(2):
            sensor(build_sensor_context(instance=instance, cursor=context.cursor))
        assert len(receiver.posts) == 1
        # a live run stores fresh trades: one recovery message
        run = instance.add_run(DagsterRun(job_name=SPEC.name, tags={STREAM_TAG: SPEC.name},
                                          status=DagsterRunStatus.STARTED))
        write_run_alive(instance, run.run_id)
        store.write(key, _trades([time.time_ns()]))
        sensor(build_sensor_context(instance=instance, cursor=context.cursor))
        assert len(receiver.posts) == 2
        assert receiver.texts[1].startswith(f"dccd stream {SPEC.name} recovered (was: last "
                                            "stored message")


def test_a_stream_without_a_live_run_goes_stale_after_the_threshold(tmp_path: Path) -> None:
    from dccd_pipelines.alerts import stale_streams

    store = Store(tmp_path)
    key = SPEC.key(SPEC.symbols[0])
    with instance_for_test() as instance:
        memory: dict[str, dict[str, float]] = {}
        now = time.time()
        # rows fresh at every instant below (an update run wrote them): they must not hide
        # that the stream itself is down
        store.write(key, _trades([int((now + 61) * 1e9)]))

        def newest(spec: StreamSpec) -> int | None:
            return store.last_ts(key)

        # no live run: not yet stale, then stale once that lasted the threshold
        assert stale_streams(instance, [SPEC], newest, 60, now, memory) == {}
        stale = stale_streams(instance, [SPEC], newest, 60, now + 61, memory)
        assert stale == {SPEC.name: "no live stream run for 61 s"}
        # nothing stored ever, run alive: stale after the threshold too
        empty = StreamSpec("bybit", DataType.TRADES, (Symbol.parse("ETH/USDT"),))
        run = instance.add_run(DagsterRun(job_name=empty.name, tags={STREAM_TAG: empty.name},
                                          status=DagsterRunStatus.STARTED))
        write_run_alive(instance, run.run_id, now + 200)
        assert stale_streams(instance, [empty], lambda s: None, 60, now + 150, memory) == {}
        assert stale_streams(instance, [empty], lambda s: None, 60, now + 211, memory) == {
            empty.name: "nothing stored in 61 s"}


# -- the catalog key ----------------------------------------------------------------------


def _catalog(alerts: Any, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    from datetime import date

    from dccd_pipelines.catalog import parse_catalog

    raw = {"datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"],
                         "data_types": ["trades"], "start": "2024-01-01",
                         "stream": ["trades"]}]}
    if alerts is not None:
        raw["alerts"] = alerts
    return parse_catalog(raw, path="dccd.yaml", env=env or {}, today=date(2024, 6, 1))


def test_the_documented_alerts_block_parses_and_builds_both_sensors() -> None:
    import yaml

    from dccd_pipelines.definitions import build_definitions
    from tests.docs.doc_blocks import doc_blocks

    [block] = [b for b in doc_blocks("docs/catalog.md")
               if b.lang == "yaml" and b.text.startswith("alerts:")]
    catalog = _catalog(yaml.safe_load(block.text)["alerts"])
    assert catalog.alerts == AlertSettings("https://hooks.slack.com/services/T000/B000/XXXX",
                                           stale_after_s=600.0)
    names = {s.name for s in build_definitions(catalog).get_repository_def().sensor_defs}
    assert {FAILURE_SENSOR_NAME, STALE_SENSOR_NAME} <= names
    # no webhook: no alert sensors; the environment's webhook wins over the file's
    assert _catalog(None).alerts is None
    names = {s.name for s in build_definitions(_catalog(None)).get_repository_def().sensor_defs}
    assert not {FAILURE_SENSOR_NAME, STALE_SENSOR_NAME} & names
    env = {"DCCD_ALERTS_WEBHOOK": "https://example.test/hook"}
    assert _catalog({"stale_after": "90s"}, env).alerts == AlertSettings(
        "https://example.test/hook", 90.0)


def test_a_bad_alerts_key_is_one_clear_error() -> None:
    from dccd_core.domain import ConfigError

    with pytest.raises(ConfigError, match=r"alerts\.webhook: .*'ftp://x' is not an http\(s\) URL"):
        _catalog({"webhook": "ftp://x"})
    with pytest.raises(ConfigError, match=r"alerts\.stale_after: .*invalid duration 'soon'"):
        _catalog({"webhook": "https://x.test", "stale_after": "soon"})
    with pytest.raises(ConfigError, match=r"alerts\.channel: unknown key"):
        _catalog({"webhook": "https://x.test", "channel": "#ops"})
