"""Asset checks per dataset: the lake's invariants, audited file by file.

The store promises every period file sorted, deduplicated and holding only its own
period; these checks verify those promises on the files themselves (raw, not through
a deduplicating read), plus candle sanity and holes against the coverage record.

* ``no_duplicates``      no natural key twice in a period file (ERROR)
* ``sorted_in_period``   ts non-decreasing (strictly, for candles) and inside the
                         file's period (ERROR)
* ``ohlc_sanity``        low <= open, close <= high, volume >= 0 (candles only; BitMEX
                         ``open`` is the previous close and may lie outside, DESIGN.md)
* ``funding_interval_regular``, ``funding_rate_plausible``  funding only (WARN; see
                         ``funding_checks``)
* ``no_holes``           no never-fetched range inside the window up to the coverage
                         frontier (WARN; the unfetched tail is the freshness policy's job;
                         ``dccd_core.storage.find_holes``: the open candle is never a hole)
* ``archives_verified``  where the exchange publishes archive files of the dataset: the
                         ingested files' published sha256 unchanged, a REST sample's row
                         count as stored (``archive_checks``; the only check that makes
                         requests, a few, and none when no archive file was ingested)

The window is the run's partition range when the check runs with a materialization
(the dataset's job runs it right after the asset), else the whole dataset. Files are
read one at a time, so memory is bounded by the largest period file.

A streamed dataset materializes every few seconds from its stream run, not from its
asset op: the stream run evaluates the same checks on the day partitions it writes
(``stream_check_evaluations``, logged as ``AssetCheckEvaluation`` events on the check
keys its asset declares), so the UI shows a check status per streamed day.

Freshness is not a check here: ``assets.freshness_policy`` sets Dagster 1.13's
``FreshnessPolicy`` on each asset from its update cron.
"""


from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import (
    CANDLE_TYPES,
    NS_PER_DAY,
    SPANNED_TYPES,
    DatasetKey,
    DataType,
    iso_datetime,
    natural_key,
    now_ns,
    to_ns,
)

from .archive_checks import ARCHIVES_VERIFIED, archive_check_result, has_archive_check
from .archive_checks import DESCRIPTION as _ARCHIVES_DESCRIPTION
from .funding_checks import DESCRIPTIONS as _FUNDING_DESCRIPTIONS
from .funding_checks import FUNDING_CHECKS, audit_funding
from .store import DccdStore

__all__ = [
    "CHECK_NAMES",
    "CheckOutcome",
    "audit_dataset",
    "audit_frame",
    "build_dataset_checks",
    "check_names",
    "dataset_check_specs",
    "evaluate_checks",
    "stream_check_evaluations",
]

CHECK_NAMES = ("no_duplicates", "sorted_in_period", "ohlc_sanity", *FUNDING_CHECKS, "no_holes")
EXAMPLES = 5
#: Exchanges whose candle ``open`` is the previous bar's close (may lie outside [low, high]).
OPEN_OUTSIDE_RANGE_OK = frozenset({"bitmex"})


@dataclass
class CheckOutcome:
    """One check's verdict over a window: offending-row count and the first offenders."""

    name: str
    rows_checked: int = 0
    bad: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.bad == 0

    def add(self, rows: int, bad: int, examples: pl.DataFrame | None) -> None:
        self.rows_checked += rows
        self.bad += bad
        if examples is not None and len(self.examples) < EXAMPLES:
            for row in examples.head(EXAMPLES - len(self.examples)).iter_rows(named=True):
                self.examples.append(
                    {k: iso_datetime(v) if k == "ts" else v for k, v in row.items()}
                )


def check_names(key: DatasetKey) -> list[str]:
    """The checks that apply to a dataset."""
    names = ["no_duplicates", "sorted_in_period"]
    if key.data_type in CANDLE_TYPES:
        names.append("ohlc_sanity")
    if key.data_type is DataType.FUNDING:
        names.extend(FUNDING_CHECKS)
    if key.data_type is not DataType.BOOK:
        names.append("no_holes")
    return names


def audit_frame(
    frame: pl.DataFrame, key: DatasetKey, period_start: int, period_end: int
) -> dict[str, tuple[int, pl.DataFrame | None]]:
    """Pure: the offending-row count and first offenders of each row check on one file."""
    out: dict[str, tuple[int, pl.DataFrame | None]] = {}
    cols = list(natural_key(key.data_type))
    dup_mask = frame.select(pl.struct(cols).is_duplicated()).to_series()
    dups = frame.filter(dup_mask)
    out["no_duplicates"] = (int(dup_mask.sum() or 0), dups.head(EXAMPLES))

    ts = frame.get_column("ts")
    step = ts.diff()
    strict = key.data_type in SPANNED_TYPES  # one row per span: equal ts is a duplicate
    disorder = (step <= 0) if strict else (step < 0)
    disorder = disorder.fill_null(False)
    # a duplicate candle shows as step == 0: count it once, as a duplicate, not as disorder
    if strict:
        disorder = disorder & (step != 0)
    outside = (ts < period_start) | (ts >= period_end)
    bad_order = disorder | outside
    out["sorted_in_period"] = (int(bad_order.sum() or 0), frame.filter(bad_order).head(EXAMPLES))

    if key.data_type in CANDLE_TYPES:
        low, high = pl.col("low"), pl.col("high")
        cond = (low > high) | (pl.col("close") < low) | (pl.col("close") > high)
        cond = cond | (pl.col("volume") < 0) | pl.any_horizontal(
            pl.col(c).is_nan() for c in ("open", "high", "low", "close")
        )
        if key.exchange not in OPEN_OUTSIDE_RANGE_OK:
            cond = cond | (pl.col("open") < low) | (pl.col("open") > high)
        bad = frame.filter(cond)
        out["ohlc_sanity"] = (bad.height, bad.head(EXAMPLES))
    if key.data_type is DataType.FUNDING:
        out.update(audit_funding(frame, EXAMPLES))
    return out


def _period_files(
    root: str, key: DatasetKey, start_ts: int | None, end_ts: int | None
) -> Iterator[tuple[list[Any], int, int]]:
    """Each period in the window: its files (the period file and its segments)."""
    from dccd_core.storage.layout import list_period_files, period_bounds

    by_period: dict[str, list[Any]] = {}
    for pf in list_period_files(root, key):
        by_period.setdefault(pf.period, []).append(pf.path)
    for period, paths in sorted(by_period.items()):
        lo, hi = period_bounds(key, period)
        if (start_ts is not None and hi <= start_ts) or (end_ts is not None and lo >= end_ts):
            continue
        yield paths, lo, hi


def audit_dataset(
    store_root: str,
    key: DatasetKey,
    start_ts: int | None,
    end_ts: int | None,
    *,
    dataset_start_ts: int | None = None,
) -> dict[str, CheckOutcome]:
    """Run every applicable check of ``key`` over ``[start_ts, end_ts)`` (None: all)."""
    names = check_names(key)
    outcomes = {name: CheckOutcome(name) for name in names}
    for paths, lo, hi in _period_files(store_root, key, start_ts, end_ts):
        frames = []
        for path in paths:  # order and sanity per file: segments are sorted on their own
            lazy = pl.scan_parquet(path)
            if start_ts is not None:
                lazy = lazy.filter(pl.col("ts") >= start_ts)
            if end_ts is not None:
                lazy = lazy.filter(pl.col("ts") < end_ts)
            frame = lazy.collect()
            frames.append(frame)
            results = audit_frame(frame, key, lo, hi)
            if len(paths) > 1:  # duplicates across the period's files, below
                del results["no_duplicates"]
            for name, (bad, examples) in results.items():
                outcomes[name].add(frame.height, bad, examples)
            for name in ("no_duplicates", "sorted_in_period", "ohlc_sanity", *FUNDING_CHECKS):
                if name in outcomes:
                    outcomes[name].extra.setdefault("files", 0)
                    outcomes[name].extra["files"] += 1
        if len(paths) > 1:
            period = pl.concat(frames, how="vertical")
            bad, examples = audit_frame(period, key, lo, hi)["no_duplicates"]
            outcomes["no_duplicates"].add(period.height, bad, examples)
    if "no_holes" in outcomes:
        _audit_holes(outcomes["no_holes"], store_root, key, start_ts, end_ts, dataset_start_ts)
    return outcomes


def _audit_holes(
    outcome: CheckOutcome,
    store_root: str,
    key: DatasetKey,
    start_ts: int | None,
    end_ts: int | None,
    dataset_start_ts: int | None,
) -> None:
    from dccd_core.storage import Store, find_holes

    coverage = Store(store_root).coverage(key)
    lo = start_ts if start_ts is not None else (dataset_start_ts or coverage.start)
    frontier = coverage.end
    now = now_ns()
    hi = min(end_ts if end_ts is not None else now, frontier or 0)
    outcome.extra["coverage_until"] = iso_datetime(frontier) if frontier else None
    if lo is None or frontier is None:
        outcome.bad = 1
        outcome.extra["reason"] = "nothing fetched yet: materialize the dataset"
        return
    # up to the frontier (the tail not fetched yet is the freshness policy's job), and
    # never the bar still open
    holes = list(find_holes(key, coverage, lo, hi, now).holes) if hi > lo else []
    outcome.bad = len(holes)
    outcome.extra["missing_s"] = sum(b - a for a, b in holes) // 1_000_000_000
    outcome.examples = [
        {"start": iso_datetime(a), "end": iso_datetime(b)} for a, b in holes[:EXAMPLES]
    ]


_SEVERITY = {
    "no_duplicates": AssetCheckSeverity.ERROR,
    "sorted_in_period": AssetCheckSeverity.ERROR,
    "ohlc_sanity": AssetCheckSeverity.ERROR,
    "no_holes": AssetCheckSeverity.WARN,
    **dict.fromkeys(FUNDING_CHECKS, AssetCheckSeverity.WARN),
}
_DESCRIPTION = {
    "no_duplicates": "No natural key appears twice in a period file.",
    "sorted_in_period": "Rows sorted by ts and inside their period file's time range.",
    "ohlc_sanity": "low <= open, close <= high and volume >= 0 (BitMEX open exempt).",
    "no_holes": "No never-fetched range in the window, up to the coverage frontier.",
    **_FUNDING_DESCRIPTIONS,
}


def _window(context: Any) -> tuple[int | None, int | None]:
    if context.has_partition_key_range or context.has_partition_key:
        rng = context.partition_key_range
        return to_ns(rng.start), min(to_ns(rng.end) + NS_PER_DAY, now_ns())
    return None, None


def _result(
    key: DatasetKey, outcome: CheckOutcome, window: Sequence[int | None]
) -> AssetCheckResult:
    return AssetCheckResult(**_check_fields(key, outcome, window))


def _check_fields(
    key: DatasetKey, outcome: CheckOutcome, window: Sequence[int | None]
) -> dict[str, Any]:
    """What an ``AssetCheckResult`` and an ``AssetCheckEvaluation`` of a check share."""
    return {
        "asset_key": AssetKey(key.asset_key_path),
        "check_name": outcome.name,
        "passed": outcome.passed,
        "severity": _SEVERITY[outcome.name],
        "metadata": _metadata(outcome, window),
        "description": _DESCRIPTION[outcome.name],
    }


def _metadata(outcome: CheckOutcome, window: Sequence[int | None]) -> dict[str, Any]:
    start_ts, end_ts = window
    metadata: dict[str, Any] = {
        "offending": MetadataValue.int(outcome.bad),
        "rows_checked": MetadataValue.int(outcome.rows_checked),
        "window": MetadataValue.text(
            f"{iso_datetime(start_ts) if start_ts is not None else 'start'} -> "
            f"{iso_datetime(end_ts) if end_ts is not None else 'now'}"
        ),
    }
    if outcome.examples:
        metadata["first_offending"] = MetadataValue.json(outcome.examples)
    for name, value in outcome.extra.items():
        if isinstance(value, bool) or value is None:
            metadata[name] = MetadataValue.text("" if value is None else str(value))
        elif isinstance(value, int):
            metadata[name] = MetadataValue.int(value)
        elif isinstance(value, str):
            metadata[name] = MetadataValue.text(value)
        else:
            metadata[name] = MetadataValue.json(value)
    return metadata


def stream_check_evaluations(
    store_root: str, key: DatasetKey, day: str, *, now_ts: int | None = None
) -> list[AssetCheckEvaluation]:
    """The checks of ``key`` over the day partition ``day`` (``YYYY-MM-DD``) up to now,
    as events a stream run logs (the day's status in the UI; a later one replaces it)."""
    start_ts = to_ns(day)
    window = (start_ts, min(start_ts + NS_PER_DAY, now_ts if now_ts is not None else now_ns()))
    outcomes = audit_dataset(store_root, key, *window)
    return [
        AssetCheckEvaluation(**_check_fields(key, outcome, window), partition=day)
        for outcome in outcomes.values()
    ]


def dataset_check_specs(spec: DatasetSpec) -> list[AssetCheckSpec]:
    """The check specs of a dataset (carried by its asset op, see ``assets.py``)."""
    key = AssetKey(spec.key.asset_key_path)
    specs = [
        AssetCheckSpec(name, asset=key, description=_DESCRIPTION[name])
        for name in check_names(spec.key)
    ]
    if has_archive_check(spec):
        specs.append(
            AssetCheckSpec(ARCHIVES_VERIFIED, asset=key, description=_ARCHIVES_DESCRIPTION)
        )
    return specs


def evaluate_checks(context: Any, spec: DatasetSpec, store_root: str) -> Iterator[AssetCheckResult]:
    """The selected checks of ``spec`` over the run's window (see the module docstring).

    ``context`` is an asset or asset-check execution context.
    """
    asset = AssetKey(spec.key.asset_key_path)
    selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == asset}
    if not selected:
        return
    window = _window(context)
    outcomes = audit_dataset(store_root, spec.key, *window, dataset_start_ts=spec.start_ts)
    for name, outcome in outcomes.items():
        if name in selected:
            yield _result(spec.key, outcome, window)
    if ARCHIVES_VERIFIED in selected and has_archive_check(spec):
        yield archive_check_result(spec, store_root, *window)


def build_dataset_checks(spec: DatasetSpec) -> AssetChecksDefinition:
    """The checks of one dataset as their own op, for assets that do not carry them
    (derived candles); fetched datasets carry theirs in the asset op."""
    check_specs = dataset_check_specs(spec)

    @multi_asset_check(specs=check_specs, name=f"{spec.key.job_name}__checks", can_subset=True)
    def _checks(
        context: AssetCheckExecutionContext, dccd_store: DccdStore
    ) -> Iterator[AssetCheckResult]:
        yield from evaluate_checks(context, spec, dccd_store.root)

    return _checks
