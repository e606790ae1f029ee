"""What an exchange's API can do, declared per (data type x transport).

Sources declare a ``Capability``; the core checks every request against it before
the first page is fetched, so "Kraken has only 720 candles" is an immediate
``NoCapability`` naming the alternative, not a half-empty dataset an hour later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import NoCapability
from .timeutil import NS_PER_DAY
from .types import NO_REST_HISTORY, STREAM_ONLY, DataType, Span

__all__ = [
    "ArchiveFeature",
    "ArchiveGranularity",
    "Capability",
    "Feature",
    "PageDirection",
    "Transport",
]


class Transport(StrEnum):
    """How data is collected: paged history over REST or live over WebSocket."""

    REST = "rest"
    WS = "ws"


class PageDirection(StrEnum):
    """Which way an endpoint pages: oldest-first (forward) or newest-first (backward)."""

    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class Feature:
    """One (data type, transport) an exchange serves, and its limits.

    ``history_bars``: only the most recent N candles are reachable (Kraken: 720).
    ``history_days``: only the last N days are served (OKX funding: 3 months).
    ``recent_only``: no history paging at all, only the latest page (Bybit trades).
    ``weight``: the request weight this endpoint costs against the exchange limit.
    ``alternative``: what to use instead when a request falls outside the feature.
    """

    data_type: DataType
    transport: Transport
    page_limit: int | None = None
    direction: PageDirection = PageDirection.FORWARD
    spans: tuple[Span, ...] = ()
    book_depths: tuple[int, ...] = ()
    history_bars: int | None = None
    history_days: int | None = None
    recent_only: bool = False
    weight: int = 1
    channel: str | None = None
    alternative: str | None = None

    @property
    def history_label(self) -> str:
        """A short description of the reachable history, for the capability table."""
        if self.transport is Transport.WS:
            return "live"
        if self.data_type is DataType.BOOK:
            return "current snapshot"  # no exchange serves past order books over REST
        if self.recent_only:
            return "recent page only"
        if self.history_bars is not None:
            return f"last {self.history_bars} bars"
        if self.history_days is not None:
            return f"last {self.history_days} days"
        return "full"


class ArchiveGranularity(StrEnum):
    """How much history one bulk file holds."""

    MONTHLY = "monthly"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class ArchiveFeature:
    """One series an exchange publishes as bulk files (e.g. data.binance.vision klines).

    ``markets``: which markets' symbols have files, as ``Symbol.market_kind`` names them
    (``spot``, ``linear``, ``inverse``).
    ``granularities``: monthly files for closed months and/or daily files for closed
    days; the planner prefers monthly, then daily, then REST for the recent tail.
    ``lag_days``: a closed day's file is published this many days later, at most.
    ``checksum``: each file has a published sha256 beside it.
    ``spans``: the candle spans files exist for (empty: not a candle type).
    ``docs_url``: where the layout is documented (or ``""``: undocumented, said in code).
    """

    data_type: DataType
    markets: tuple[str, ...]
    granularities: tuple[ArchiveGranularity, ...]
    spans: tuple[Span, ...] = ()
    lag_days: int = 1
    checksum: bool = False
    docs_url: str = ""


@dataclass(frozen=True, slots=True)
class Capability:
    """Everything an exchange can serve, plus its request budget."""

    exchange: str
    features: tuple[Feature, ...]
    weight_per_minute: int = 1_200
    docs_url: str = ""
    markets: tuple[str, ...] = field(default=("spot",))
    #: the series published as bulk files (``dccd_core/sources/archives``); () if none
    archives: tuple[ArchiveFeature, ...] = ()

    def archive(
        self, data_type: DataType, market: str, span: Span | None = None
    ) -> ArchiveFeature | None:
        """The bulk-file series serving ``data_type`` of ``market`` (and ``span``), or None."""
        for feature in self.archives:
            if feature.data_type is not data_type or market not in feature.markets:
                continue
            if span is not None and feature.spans and span not in feature.spans:
                continue
            return feature
        return None

    def feature(self, data_type: DataType, transport: Transport = Transport.REST) -> Feature | None:
        """The declared feature, or None."""
        for feature in self.features:
            if feature.data_type is data_type and feature.transport is transport:
                return feature
        return None

    def require(
        self,
        data_type: DataType,
        transport: Transport = Transport.REST,
        *,
        span: Span | None = None,
        depth: int | None = None,
        start_ts: int | None = None,
        now_ts: int | None = None,
        history: bool = True,
    ) -> Feature:
        """The feature for this request, or ``NoCapability`` saying why and what instead.

        ``history``: the request needs paging into the past (a backfill), not just the
        latest page.
        """
        if transport is Transport.REST and data_type in STREAM_ONLY:
            raise NoCapability(NO_REST_HISTORY)  # on no exchange: the one message
        feature = self.feature(data_type, transport)
        if feature is None:
            raise NoCapability(
                f"{self.exchange} cannot serve {data_type} over {transport}"
                + self._alternatives(data_type)
            )
        if span is not None and feature.spans and span not in feature.spans:
            spans = " ".join(s.label for s in feature.spans)
            raise NoCapability(
                f"{self.exchange} has no {span} candles over {transport}: its spans are {spans}"
                + (f"; {feature.alternative}" if feature.alternative else "")
            )
        if depth is not None and feature.book_depths and depth not in feature.book_depths:
            allowed = min((d for d in feature.book_depths if d >= depth), default=None)
            hint = f"; use depth {allowed}" if allowed else ""
            raise NoCapability(
                f"{self.exchange} has no book depth {depth}: its depths are "
                f"{', '.join(map(str, feature.book_depths))}{hint}"
            )
        if history and feature.recent_only:
            raise NoCapability(
                f"{self.exchange} serves only the most recent {data_type} over REST, no history"
                + (f"; {feature.alternative}" if feature.alternative else "")
            )
        if (
            history
            and feature.history_bars is not None
            and span is not None
            and start_ts is not None
            and now_ts is not None
            and start_ts < span.floor(now_ts) - (feature.history_bars - 1) * span.ns
        ):
            raise NoCapability(
                f"{self.exchange} keeps only the last {feature.history_bars} {span} "
                f"{'samples of ' + data_type if data_type is DataType.OPEN_INTEREST else 'candles'}"
                "; the requested start is older"
                + (f"; {feature.alternative}" if feature.alternative else "")
            )
        if (
            history
            and feature.history_days is not None
            and start_ts is not None
            and now_ts is not None
            and start_ts < now_ts - feature.history_days * NS_PER_DAY
        ):
            raise NoCapability(
                f"{self.exchange} serves only the last {feature.history_days} days of "
                f"{data_type} over {transport}; the requested start is older"
                + (f"; {feature.alternative}" if feature.alternative else "")
            )
        return feature

    def _alternatives(self, data_type: DataType) -> str:
        other = [
            f"{f.data_type} over {f.transport}" for f in self.features if f.data_type is data_type
        ]
        if other:
            return f" (it serves {', '.join(other)})"
        return f"; docs/exchanges.md lists the exchanges that serve {data_type}"
