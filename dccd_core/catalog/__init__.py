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

The package splits the catalog by concern: ``shape`` (the YAML's pydantic models),
``specs`` (the validated dataclasses every layer reads), ``loading`` (file -> YAML,
problems as lines), ``validation`` (YAML -> ``Catalog``) and ``exchanges`` (what the
registry says an exchange can serve). It lives in the core, not in the Dagster
project: the CLI and ``dccd status`` read it without Dagster.
"""

from .exchanges import exchange_capability, is_known_exchange, known_exchange_ids
from .loading import catalog_path, load_catalog, read_yaml
from .shape import DEFAULT_CONFIG_PATH, DEFAULT_POOL_LIMIT, DEFAULT_STORE_ROOT, parse_duration_s
from .specs import AlertSettings, Catalog, DatasetSpec, ExchangeSettings
from .validation import CronCheck, five_field_cron, parse_catalog

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_POOL_LIMIT",
    "DEFAULT_STORE_ROOT",
    "AlertSettings",
    "Catalog",
    "CronCheck",
    "DatasetSpec",
    "ExchangeSettings",
    "catalog_path",
    "exchange_capability",
    "five_field_cron",
    "is_known_exchange",
    "known_exchange_ids",
    "load_catalog",
    "parse_catalog",
    "parse_duration_s",
    "read_yaml",
]
