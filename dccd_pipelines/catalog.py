"""The catalog: ``dccd.yaml`` turned into one ``DatasetSpec`` per dataset.

The catalog is the only configuration of the Dagster project: every asset, job,
schedule and check is derived from a ``DatasetSpec``. It is read when the
definitions are built (never at import), from ``DCCD_CONFIG`` or ``./dccd.yaml``;
``DCCD_DATA_PATH`` overrides ``store.root`` and ``DCCD_<EXCHANGE>_REST_URL`` /
``DCCD_<EXCHANGE>_WS_URL`` override an exchange's endpoints.

Everything that would fail mid-run is refused at load, as ONE ``CatalogError`` (a
``ConfigError``) whose ``problems`` are one line each, naming the file, the key path
(``datasets[1].spans[0]``) and the fix: a file that is not UTF-8 or not YAML, a key
written twice (at any depth: YAML would silently keep the last), no datasets at all,
an unknown exchange (the registry's native sources plus every ccxt id, with close
matches), a REST/WS URL that is not an http(s)/ws(s) origin, a store root that cannot
be written, a malformed symbol, an unknown span (``1M`` is a month: refused), spans
on a dataset without ohlc, a data type the exchange cannot serve, a start that is not
a date or is in the future, a duplicate dataset, an invalid cron, a stream of a type
not collected, a derived span without trades to derive it from.

Shape (keys may grow, these stay)::

    store: {root: ./data}
    exchanges:
      binance: {rest_url: "https://api.binance.com", pool_limit: 2}
    datasets:
      - exchange: binance
        symbols: [BTC/USDT, ETH/USDT]
        data_types: [ohlc, trades, book]
        spans: [1m, 1h]
        start: 2024-01-01
        update: "*/15 * * * *"
        stream: [trades, book]
        book: {depth: 20, snapshot_interval: 10s}
        derive: [4h, 1w]          # candles computed from the trades (dccd_pipelines.derived)
    alerts: {webhook: "https://hooks.slack.com/services/...", stale_after: 10m}
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dccd_core.domain import (
    Capability,
    CatalogError,
    ConfigError,
    DatasetKey,
    DataType,
    DccdError,
    NoCapability,
    Span,
    Symbol,
    Transport,
    now_ns,
    to_ns,
)
from dccd_core.storage import Store

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_POOL_LIMIT",
    "AlertSettings",
    "Catalog",
    "DatasetSpec",
    "ExchangeSettings",
    "catalog_path",
    "load_catalog",
    "parse_catalog",
    "read_yaml",
]

DEFAULT_CONFIG_PATH = "dccd.yaml"
DEFAULT_STORE_ROOT = "./data"
#: Concurrent runs per exchange (the Dagster pool limit) unless the catalog says otherwise.
DEFAULT_POOL_LIMIT = 2

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, None: 1.0}


# --------------------------------------------------------------------------- YAML shape


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StoreModel(_Model):
    root: str = DEFAULT_STORE_ROOT


class _ExchangeModel(_Model):
    rest_url: str | None = None
    ws_url: str | None = None
    pool_limit: int = Field(default=DEFAULT_POOL_LIMIT, ge=1, le=64)


class _BookModel(_Model):
    depth: int = Field(default=20, ge=1, le=5_000)
    snapshot_interval: str | float = "10s"

    @field_validator("snapshot_interval")
    @classmethod
    def _interval(cls, value: str | float) -> str | float:
        parse_duration_s(value)
        return value


class _DatasetModel(_Model):
    exchange: str
    symbols: list[str] = Field(min_length=1)
    data_types: list[str] = Field(min_length=1)
    spans: list[str | int] = Field(default_factory=list)
    start: date
    update: str | None = None
    stream: list[str] = Field(default_factory=list)
    derive: list[str | int] = Field(default_factory=list)
    book: _BookModel = Field(default_factory=_BookModel)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        # ``start: 2024-01-01T00:00:00Z`` is a datetime; a day is what we mean.
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return _parse_day(value)
        if isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-01-01")
        return value


class _AlertsModel(_Model):
    webhook: str | None = None
    stale_after: str | float = "10m"

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL; use e.g. https://hooks.slack.com/...")
        return value

    @field_validator("stale_after")
    @classmethod
    def _stale_after(cls, value: str | float) -> str | float:
        parse_duration_s(value)
        return value


class _CatalogModel(_Model):
    store: _StoreModel = Field(default_factory=_StoreModel)
    exchanges: dict[str, _ExchangeModel] = Field(default_factory=dict)
    datasets: list[_DatasetModel] = Field(default_factory=list)
    alerts: _AlertsModel | None = None


_DAY_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ].*)?$")


def _parse_day(text: str) -> date:
    """``2024-01-01`` (a time after it is ignored) -> date; a clear ValueError else."""
    match = _DAY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-01-01")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a valid date ({exc}): write a real day as YYYY-MM-DD, "
            "e.g. 2024-01-01"
        ) from None


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    """Per-exchange settings after env overrides: endpoints (None: the source's default)."""

    name: str
    rest_url: str | None = None
    ws_url: str | None = None
    pool_limit: int = DEFAULT_POOL_LIMIT

    @property
    def pool(self) -> str:
        """The Dagster concurrency pool of this exchange's runs: ``dccd_binance``."""
        return f"dccd_{self.name}"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset to collect: the unit the asset factory turns into an asset, a job,
    a schedule and checks."""

    key: DatasetKey
    start: date
    update_cron: str | None = None
    stream: bool = False
    book_depth: int | None = None
    snapshot_interval_s: float | None = None
    exchange: ExchangeSettings = field(default_factory=lambda: ExchangeSettings("unknown"))
    #: For candles listed under ``derive:``: the trades dataset they are computed from.
    derive_from: DatasetKey | None = None

    @property
    def start_ts(self) -> int:
        """The first partition's start, ns."""
        return to_ns(self.start)

    @property
    def rest_url(self) -> str | None:
        return self.exchange.rest_url

    @property
    def ws_url(self) -> str | None:
        return self.exchange.ws_url

    @property
    def pool(self) -> str:
        return self.exchange.pool


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Where failure and stale-stream alerts go (``alerts:``; ``DCCD_ALERTS_WEBHOOK``
    overrides the URL, which is a secret)."""

    webhook: str
    stale_after_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Catalog:
    """The validated catalog: where the lake is, and what to collect."""

    path: Path
    store_root: Path
    exchanges: Mapping[str, ExchangeSettings]
    datasets: tuple[DatasetSpec, ...]
    alerts: AlertSettings | None = None

    def spec(self, key: DatasetKey) -> DatasetSpec:
        """The spec of ``key``; ``ConfigError`` if the catalog does not list it."""
        for spec in self.datasets:
            if spec.key == key:
                return spec
        raise ConfigError(f"{self.path}: no dataset {key} in the catalog; add it under datasets")

    def __len__(self) -> int:
        return len(self.datasets)


# --------------------------------------------------------------------------- loading


def catalog_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The catalog file to read: ``path``, else ``$DCCD_CONFIG``, else ``./dccd.yaml``."""
    chosen = path if path is not None else os.environ.get("DCCD_CONFIG") or DEFAULT_CONFIG_PATH
    return Path(chosen).expanduser().resolve()


def load_catalog(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    today: date | None = None,
) -> Catalog:
    """Read and validate the catalog (see the module docstring for the sources of ``path``).

    ``env`` (default ``os.environ``) and ``today`` (default: the UTC date) exist for tests.
    """
    file = catalog_path(path)
    if not file.is_file():
        raise CatalogError(
            f"catalog {file} not found: create it (see dccd.yaml at the project root) "
            "or point DCCD_CONFIG at your catalog"
        )
    return parse_catalog(read_yaml(file), path=file, env=env, today=today)


class _CatalogLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, but dates stay text: ``start: 2024-02-30`` then reaches
    the model (which names the key) instead of failing inside the YAML library."""


_CatalogLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),
)


def read_yaml(file: Path) -> Any:
    """The YAML document of ``file``; ``CatalogError`` (file, line, key, fix) for bytes
    that are not UTF-8, broken YAML, or a key written twice in one mapping."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CatalogError(
            f"catalog {file} cannot be read ({exc.strerror or exc}): fix its permissions"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        shown = data[start : end if end >= 0 else len(data)].decode("utf-8", "backslashreplace")
        raise CatalogError(
            f"{file}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} in "
            f"{shown.strip()!r}): save the catalog as UTF-8"
        ) from None
    loader = _CatalogLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = _duplicate_keys(node, "", set())
        if duplicates:
            raise CatalogError(_format_problems(file, duplicates), _lines(file, duplicates))
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        message = " ".join(str(exc).split())
        raise CatalogError(f"{file}: invalid YAML{where}: fix the syntax ({message})") from None
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: str, seen: set[int]) -> list[str]:
    """Every key written twice in one mapping, at any depth, with its key path."""
    if id(node) in seen:  # an alias of a node already walked (or a recursive one)
        return []
    seen.add(id(node))
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults``: overriding merged keys is the point
            child = path
            if isinstance(key_node, yaml.ScalarNode):
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                line = key_node.start_mark.line + 1
                if key in first_line:
                    lines = f"line {line}" if first_line[key] == line else (
                        f"lines {first_line[key]} and {line}"
                    )
                    found.append(
                        f"{child}: written twice ({lines}); keep one: YAML would silently "
                        "use the last"
                    )
                else:
                    first_line[key] = line
            found += _duplicate_keys(value_node, child, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{path}[{i}]", seen)
    return found


def parse_catalog(
    raw: Any,
    *,
    path: Path | str = "<catalog>",
    env: Mapping[str, str] | None = None,
    today: date | None = None,
) -> Catalog:
    """Validate an already-parsed YAML document into a ``Catalog``."""
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
        problems = _pydantic_problems(exc)
        raise CatalogError(_format_problems(file, problems), _lines(file, problems)) from None

    problems = []
    if not model.datasets:
        problems.append(
            "datasets: the catalog lists no datasets; add one, e.g. datasets: [{exchange: "
            "binance, symbols: [BTC/USDT], data_types: [ohlc], spans: [1m], start: 2024-01-01}]"
        )
    exchanges = _build_exchanges(model, env, problems)
    specs = _build_specs(model, exchanges, today, problems)

    env_root = env.get("DCCD_DATA_PATH")
    if env_root:
        root, root_key = Path(env_root).expanduser().resolve(), "DCCD_DATA_PATH"
    else:
        # Relative to the working directory, as DCCD_DATA_PATH and the Store are.
        root, root_key = Path(model.store.root).expanduser().resolve(), "store.root"
    if model.datasets:  # checked now: a lake that cannot be written fails before a fetch
        try:
            Store(root).check_writable()
        except DccdError as exc:
            problems.append(f"{root_key}: {exc}")
    if problems:
        raise CatalogError(_format_problems(file, problems), _lines(file, problems))
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
            problems.append(f"exchanges.{name}: {_unknown_exchange(name)}")
    out: dict[str, ExchangeSettings] = {}
    for name in sorted(names):
        key, settings = next(
            ((k, v) for k, v in model.exchanges.items() if k.strip().lower() == name),
            (name, _ExchangeModel()),
        )
        prefix = f"DCCD_{name.upper()}_"
        urls: dict[str, str | None] = {}
        for kind, configured in (("rest", settings.rest_url), ("ws", settings.ws_url)):
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
        )
    return out


def _check_origin(url: str, exchange: str, kind: str, where: str, problems: list[str]) -> None:
    """A REST origin must be http(s)://host[:port], a WS one ws(s)://host[:port]."""
    from dccd_core.sources.registry import validate_origin

    try:
        validate_origin(url, exchange, kind)
    except ConfigError as exc:
        problems.append(f"{where}: {exc}")


def _build_specs(
    model: _CatalogModel,
    exchanges: Mapping[str, ExchangeSettings],
    today: date,
    problems: list[str],
) -> list[DatasetSpec]:
    specs: list[DatasetSpec] = []
    seen: dict[DatasetKey, str] = {}
    for i, ds in enumerate(model.datasets):
        where = f"datasets[{i}]"
        before = len(problems)
        exchange = ds.exchange.strip().lower()
        if not is_known_exchange(exchange):
            problems.append(f"{where}.exchange: {_unknown_exchange(ds.exchange)}")
            continue
        symbols = _collect(problems, f"{where}.symbols", ds.symbols, Symbol.parse)
        data_types = _collect(problems, f"{where}.data_types", ds.data_types, DataType.parse)
        spans = _collect(problems, f"{where}.spans", ds.spans, Span.parse)
        streams = _collect(problems, f"{where}.stream", ds.stream, DataType.parse)
        if spans and DataType.OHLC not in data_types:
            problems.append(
                f"{where}.spans: spans apply to ohlc only; add ohlc to data_types or drop spans"
            )
        if DataType.OHLC in data_types and not ds.spans:
            problems.append(f"{where}.spans: ohlc needs at least one span, e.g. spans: [1m, 1h]")
        for j, st in enumerate(streams):
            if st not in data_types:
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
        if ds.update is not None and not _valid_cron(ds.update):
            problems.append(
                f"{where}.update: invalid cron {ds.update!r}; use 5 fields, "
                "e.g. '*/15 * * * *' (every 15 minutes)"
            )
        if start_ok:
            _check_capability(exchange, data_types, spans, ds, where, streams, problems)
        derived = _check_derive(ds, where, data_types, spans, problems)
        if len(problems) > before:
            continue
        for dt in data_types:
            for span in spans if dt is DataType.OHLC else [None]:
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
                            update_cron=ds.update,
                            stream=dt in streams,
                            book_depth=ds.book.depth if dt is DataType.BOOK else None,
                            snapshot_interval_s=(
                                parse_duration_s(ds.book.snapshot_interval)
                                if dt is DataType.BOOK
                                else None
                            ),
                            exchange=exchanges[exchange],
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


def _check_capability(
    exchange: str,
    data_types: Sequence[DataType],
    spans: Sequence[Span],
    ds: _DatasetModel,
    where: str,
    streams: Sequence[DataType],
    problems: list[str],
) -> None:
    capability = exchange_capability(exchange)
    if capability is None:
        return
    for j, dt in enumerate(data_types):
        if capability.feature(dt, Transport.REST) is None and capability.feature(
            dt, Transport.WS
        ) is None:
            problems.append(
                f"{where}.data_types[{j}]: {exchange} cannot serve {dt}; remove it "
                "(see `dccd capabilities`)"
            )
    if DataType.OHLC in data_types:
        feature = capability.feature(DataType.OHLC, Transport.REST)
        for j, span in enumerate(spans):
            if feature is not None and feature.spans and span not in feature.spans:
                allowed = " ".join(s.label for s in feature.spans)
                problems.append(
                    f"{where}.spans[{j}]: {exchange} has no {span} candles; use one of {allowed}"
                )
    # Partitions are backfilled from ``start`` over REST: the history must be reachable.
    start_ts, now_ts = to_ns(ds.start), now_ns()
    for j, dt in enumerate(data_types):
        if dt is DataType.BOOK or dt in streams or capability.feature(dt, Transport.REST) is None:
            continue
        wanted: Sequence[Span | None] = spans if dt is DataType.OHLC else [None]
        for maybe_span in wanted:
            try:
                capability.require(
                    dt, Transport.REST, span=maybe_span, start_ts=start_ts, now_ts=now_ts
                )
            except NoCapability as exc:
                problems.append(f"{where}.data_types[{j}]: {exc}")
    if DataType.BOOK in data_types:
        for transport in (Transport.REST, Transport.WS):
            feature = capability.feature(DataType.BOOK, transport)
            if feature is not None and feature.book_depths and ds.book.depth not in (
                feature.book_depths
            ):
                try:
                    capability.require(
                        DataType.BOOK, transport, depth=ds.book.depth, history=False
                    )
                except NoCapability as exc:
                    problems.append(f"{where}.book.depth: {exc}")
                break
    for j, st in enumerate(streams):
        if st in data_types and capability.feature(st, Transport.WS) is None:
            problems.append(
                f"{where}.stream[{j}]: {exchange} has no live {st} stream; remove it from stream"
            )


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


def _valid_cron(text: str) -> bool:
    # Dagster's own validator, so the catalog accepts exactly what a schedule accepts.
    from dagster._utils.schedules import is_valid_cron_string

    return len(text.split()) == 5 and is_valid_cron_string(text)


def parse_duration_s(value: str | float | int) -> float:
    """``"10s"``, ``"500ms"``, ``"1m"``, ``2.5`` (seconds) -> seconds; > 0."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 10s, 500ms, 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ValueError(f"invalid duration {value!r}: use e.g. 10s, 500ms, 1m")
        seconds = float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be > 0")
    return seconds


# --------------------------------------------------------------------------- registry


def _native_exchange_ids() -> frozenset[str]:
    try:
        from dccd_core.sources.registry import NATIVE_SOURCES
    except ImportError:  # pragma: no cover - the registry ships with the sources
        return frozenset()
    return frozenset(NATIVE_SOURCES)


@functools.cache
def known_exchange_ids() -> frozenset[str]:
    """Native sources (the registry) plus every ccxt exchange id (imports ccxt, ~0.5 s)."""
    import ccxt

    return _native_exchange_ids() | frozenset(str(name) for name in ccxt.exchanges)


def is_known_exchange(name: str) -> bool:
    """Whether a source serves ``name``; ccxt is imported only for a non-native name."""
    return name in _native_exchange_ids() or name in known_exchange_ids()


@functools.cache
def exchange_capability(exchange: str) -> Capability | None:
    """A native source's declared capability (a class attribute: importing its module is
    the whole cost, once per exchange). None for ccxt exchanges: their capability needs
    a ccxt instance, so the ccxt source checks it at run time, before the first page."""
    try:
        from dccd_core.sources.registry import NATIVE_SOURCES, source_class
    except ImportError:  # pragma: no cover - the registry ships with the sources
        return None
    if exchange not in NATIVE_SOURCES:
        return None
    try:
        cls, _native = source_class(exchange)
    except DccdError:
        return None
    capability = getattr(cls, "capability", None)
    return capability if isinstance(capability, Capability) else None


def _unknown_exchange(name: str) -> str:
    from dccd_core.sources.registry import unknown_exchange_message

    return unknown_exchange_message(name)


def _pydantic_problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = _loc_path(err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key; check its spelling against dccd.yaml"
        elif err.get("type") == "missing":
            msg = "required key is missing; add it"
        elif err.get("type") == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines


def _lines(file: Path, problems: Sequence[str]) -> list[str]:
    """One self-contained line per problem: ``FILE: key.path: message; fix``."""
    return [f"{file}: {problem}" for problem in problems]


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "date"):  # pydantic's union branch names
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _format_problems(file: Path, problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"invalid catalog {file}: {problems[0]}"
    body = "\n".join(f"  - {p}" for p in problems)
    return f"invalid catalog {file}: {len(problems)} problems\n{body}"
