"""Validation: the YAML document -> ``Catalog``, every problem collected (one line
each, naming the key path and the fix) and raised as ONE ``CatalogError``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dccd_core.domain import (
    DERIVATIVES_ONLY,
    NO_REST_HISTORY,
    SPANNED_TYPES,
    STREAM_ONLY,
    CatalogError,
    ConfigError,
    DatasetKey,
    DataType,
    DccdError,
    Span,
    Symbol,
)
from dccd_core.storage import Store
from dccd_core.storage.objectstore import (
    DEFAULT_LEASE_TTL_S,
    ObjectStoreOptions,
    is_object_url,
    object_root,
)

from .exchanges import check_archives, check_capability, is_known_exchange, unknown_exchange
from .problems import format_problems, problem_lines, pydantic_problems
from .shape import (
    DEFAULT_STORE_ROOT,
    _AlertsModel,
    _CatalogModel,
    _DatasetModel,
    _ExchangeModel,
    _StoreModel,
    parse_duration_s,
)
from .specs import AlertSettings, Catalog, DatasetSpec, ExchangeSettings

__all__ = ["CronCheck", "five_field_cron", "parse_catalog"]

#: Judges an ``update:`` cron. The core's default only counts five fields; the Dagster
#: project and the CLI pass Dagster's own validator, so the catalog accepts exactly what
#: a schedule accepts (the core never imports Dagster).
CronCheck = Callable[[str], bool]


def _object_options(store: _StoreModel, env: Mapping[str, str]) -> ObjectStoreOptions:
    """The catalog's endpoint and region of an ``s3://`` root, the AWS variables of
    ``env`` for the rest."""
    return ObjectStoreOptions(
        endpoint_url=store.endpoint_url,
        region=store.region,
        lease_ttl_s=store.lease_ttl_s or DEFAULT_LEASE_TTL_S,
    ).with_env(env)

def five_field_cron(text: str) -> bool:
    """A cron of five fields (minute hour day month weekday)."""
    return len(text.split()) == 5


def parse_catalog(
    raw: Any,
    *,
    path: Path | str = "<catalog>",
    env: Mapping[str, str] | None = None,
    today: date | None = None,
    cron_check: CronCheck = five_field_cron,
) -> Catalog:
    """Validate an already-parsed YAML document into a ``Catalog`` (``cron_check``: see
    ``CronCheck``)."""
    file = Path(path)
    env = os.environ if env is None else env
    today = today or datetime.now(UTC).date()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogError(
            f"{file}: the catalog must be a mapping with store/exchanges/datasets"
        )
    try:
        model = _CatalogModel.model_validate(raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        raise CatalogError(format_problems(file, problems), problem_lines(file, problems)) from None

    problems = []
    if not model.datasets:
        problems.append(
            "datasets: the catalog lists no datasets; add one, e.g. datasets: [{exchange: "
            "binance, symbols: [BTC/USDT], data_types: [ohlc], spans: [1m], start: 2024-01-01}]"
        )
    exchanges = _build_exchanges(model, env, problems)
    specs = _build_specs(model, exchanges, today, cron_check, problems)

    env_root = env.get("DCCD_DATA_PATH")
    raw_root, root_key = (
        (env_root, "DCCD_DATA_PATH") if env_root else (model.store.root, "store.root")
    )
    root: Path
    check_root = bool(model.datasets)  # checked now: an unwritable lake fails first
    if is_object_url(raw_root):  # s3://bucket/prefix: endpoint from the catalog or AWS_*
        try:
            root = object_root(raw_root, _object_options(model.store, env))
        except DccdError as exc:
            problems.append(f"{root_key}: {exc}")
            root, check_root = Path(DEFAULT_STORE_ROOT), False
    else:
        # Relative to the working directory, as DCCD_DATA_PATH and the Store are.
        root = Path(raw_root).expanduser().resolve()
    if check_root:
        try:
            Store(root).check_writable()
        except DccdError as exc:
            problems.append(f"{root_key}: {exc}")
    if problems:
        raise CatalogError(format_problems(file, problems), problem_lines(file, problems))
    return Catalog(path=file, store_root=root, exchanges=exchanges, datasets=tuple(specs),
                   alerts=_build_alerts(model.alerts, env))


def _build_alerts(model: _AlertsModel | None, env: Mapping[str, str]) -> AlertSettings | None:
    webhook = env.get("DCCD_ALERTS_WEBHOOK") or (model.webhook if model else None)
    if not webhook:
        return None
    stale_after = model.stale_after if model else "10m"
    return AlertSettings(webhook=webhook, stale_after_s=parse_duration_s(stale_after))


# --------------------------------------------------------------------------- validation


def _build_exchanges(
    model: _CatalogModel, env: Mapping[str, str], problems: list[str]
) -> dict[str, ExchangeSettings]:
    names = {d.exchange.strip().lower() for d in model.datasets} | {
        n.strip().lower() for n in model.exchanges
    }
    for name in model.exchanges:
        if not is_known_exchange(name.strip().lower()):
            problems.append(f"exchanges.{name}: {unknown_exchange(name)}")
    out: dict[str, ExchangeSettings] = {}
    for name in sorted(names):
        key, settings = next(
            ((k, v) for k, v in model.exchanges.items() if k.strip().lower() == name),
            (name, _ExchangeModel()),
        )
        prefix = f"DCCD_{name.upper()}_"
        urls: dict[str, str | None] = {}
        for kind, configured in (
            ("rest", settings.rest_url),
            ("ws", settings.ws_url),
            ("archive", settings.archive_url),
        ):
            overridden = env.get(f"{prefix}{kind.upper()}_URL")
            where = f"exchanges.{key}.{kind}_url"
            for origin, place in ((configured, where), (overridden, f"{prefix}{kind.upper()}_URL")):
                if origin:
                    _check_origin(origin, name, kind, place, problems)
            urls[kind] = overridden or configured
        out[name] = ExchangeSettings(
            name=name,
            rest_url=urls["rest"],
            ws_url=urls["ws"],
            pool_limit=settings.pool_limit,
            archive_url=urls["archive"],
        )
    return out


def _check_origin(url: str, exchange: str, kind: str, where: str, problems: list[str]) -> None:
    """A REST or archive origin must be http(s)://host[:port], a WS one ws(s)://host[:port]."""
    from dccd_core.sources.registry import validate_origin

    try:
        validate_origin(url, exchange, kind)
    except ConfigError as exc:
        problems.append(f"{where}: {exc}")


def _build_specs(
    model: _CatalogModel,
    exchanges: Mapping[str, ExchangeSettings],
    today: date,
    cron_check: CronCheck,
    problems: list[str],
) -> list[DatasetSpec]:
    specs: list[DatasetSpec] = []
    seen: dict[DatasetKey, str] = {}
    for i, ds in enumerate(model.datasets):
        where = f"datasets[{i}]"
        before = len(problems)
        exchange = ds.exchange.strip().lower()
        if not is_known_exchange(exchange):
            problems.append(f"{where}.exchange: {unknown_exchange(ds.exchange)}")
            continue
        symbols = _collect(problems, f"{where}.symbols", ds.symbols, Symbol.parse)
        data_types = _collect(problems, f"{where}.data_types", ds.data_types, DataType.parse)
        spans = _collect(problems, f"{where}.spans", ds.spans, Span.parse)
        streams = _collect(problems, f"{where}.stream", ds.stream, DataType.parse)
        candles = [dt for dt in data_types if dt in SPANNED_TYPES]
        if spans and not candles:
            problems.append(
                f"{where}.spans: spans apply to ohlc only (and to the derivatives' mark, "
                "index and open_interest); add one to data_types or drop spans"
            )
        if candles and not ds.spans:
            problems.append(
                f"{where}.spans: {candles[0]} needs at least one span, e.g. spans: [1m, 1h]"
            )
        for j, dt in enumerate(data_types):
            if dt in STREAM_ONLY and dt not in streams:
                problems.append(
                    f"{where}.data_types[{j}]: {NO_REST_HISTORY} (add stream: [{dt}])"
                )
        derivatives = {d for d in data_types if d in DERIVATIVES_ONLY}
        derivatives |= {d for d in streams if d in DERIVATIVES_ONLY}
        for dt in sorted(derivatives):
            for k, symbol in enumerate(symbols):
                if not symbol.is_perpetual:
                    problems.append(
                        f"{where}.symbols[{k}]: {dt} needs a perpetual symbol like "
                        f"{symbol.base}/{symbol.quote}:{symbol.quote}, not the spot symbol "
                        f"{symbol}; list derivatives in a dataset of their own"
                    )
        for j, st in enumerate(streams):
            if st not in data_types and st not in STREAM_ONLY:
                problems.append(
                    f"{where}.stream[{j}]: {st} is streamed but not in data_types; "
                    f"add {st} to data_types or remove it from stream"
                )
        start_ok = ds.start <= today and ds.start.year >= 1970
        if ds.start > today:
            problems.append(
                f"{where}.start: {ds.start} is in the future (today is {today} UTC); "
                "use a past date"
            )
        elif not start_ok:
            problems.append(
                f"{where}.start: {ds.start} is before 1970 (times are ns since the epoch); "
                "use the first day you want, e.g. 2017-01-01"
            )
        if ds.update is not None and not cron_check(ds.update):
            problems.append(
                f"{where}.update: invalid cron {ds.update!r}; use 5 fields, "
                "e.g. '*/15 * * * *' (every 15 minutes)"
            )
        if start_ok:
            check_capability(
                exchange, data_types, spans, ds, where, streams, problems, symbols=symbols
            )
        check_archives(exchange, data_types, spans, symbols, ds.archives, where, problems)
        derived = _check_derive(ds, where, data_types, spans, problems)
        # a stream-only type (liquidations) is a dataset from its stream entry alone
        data_types += [st for st in streams if st in STREAM_ONLY and st not in data_types]
        if len(problems) > before:
            continue
        for dt in data_types:
            for span in spans if dt in SPANNED_TYPES else [None]:
                for symbol in symbols:
                    key = DatasetKey(exchange, symbol, dt, span)
                    if key in seen:
                        problems.append(
                            f"{where}: duplicate dataset {key} (already in {seen[key]}); "
                            "list each dataset once"
                        )
                        continue
                    seen[key] = where
                    specs.append(
                        DatasetSpec(
                            key=key,
                            start=ds.start,
                            # no REST history to refresh on a schedule: the stream is all
                            update_cron=ds.update if dt not in STREAM_ONLY else None,
                            stream=dt in streams,
                            book_depth=ds.book.depth if dt is DataType.BOOK else None,
                            snapshot_interval_s=(
                                parse_duration_s(ds.book.snapshot_interval)
                                if dt is DataType.BOOK
                                else None
                            ),
                            exchange=exchanges[exchange],
                            archives=ds.archives,
                        )
                    )
        for span in derived:
            for symbol in symbols:
                key = DatasetKey(exchange, symbol, DataType.OHLC, span)
                if key in seen:
                    problems.append(
                        f"{where}.derive: duplicate dataset {key} (already in {seen[key]}); "
                        "list each dataset once"
                    )
                    continue
                seen[key] = f"{where}.derive"
                trades = DatasetKey(exchange, symbol, DataType.TRADES)
                specs.append(
                    DatasetSpec(key=key, start=ds.start, update_cron=ds.update,
                                exchange=exchanges[exchange], derive_from=trades)
                )
    return specs


def _check_derive(
    ds: _DatasetModel,
    where: str,
    data_types: Sequence[DataType],
    spans: Sequence[Span],
    problems: list[str],
) -> list[Span]:
    """The spans to derive from the dataset's trades (``derive:``), checked."""
    derived: list[Span] = _collect(problems, f"{where}.derive", ds.derive, Span.parse)
    if derived and DataType.TRADES not in data_types:
        problems.append(
            f"{where}.derive: candles are derived from this dataset's trades; "
            "add trades to data_types or drop derive"
        )
    for j, span in enumerate(derived):
        if DataType.OHLC in data_types and span in spans:
            problems.append(
                f"{where}.derive[{j}]: {span} candles are both fetched (spans) and derived; "
                "keep one of the two"
            )
    return derived



def _collect(
    problems: list[str], where: str, values: Sequence[Any], parse: Callable[[Any], Any]
) -> list[Any]:
    out: list[Any] = []
    for j, value in enumerate(values):
        try:
            out.append(parse(value))
        except DccdError as exc:
            problems.append(f"{where}[{j}]: {exc}")
    return out
