"""What a stream run reports: its flushes as asset materializations and a run-log
line, and why a run that stopped must not end green."""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, AssetMaterialization

from dccd_core.domain import iso_date, iso_datetime
from dccd_core.operations.stream import FlushReport

from .spec import StreamSpec

__all__ = ["OUTAGE_FAIL_S", "describe_flush", "flush_materializations", "health_metadata",
           "stream_end_problem"]

#: A run that stops after this long without a connection ends as a failure.
OUTAGE_FAIL_S = 60.0


def flush_materializations(spec: StreamSpec, report: FlushReport) -> list[AssetMaterialization]:
    events = []
    age = report.last_message_age_s
    for symbol in spec.symbols:
        rep = report.per_symbol.get(str(symbol))
        # No rows, no materialization: an empty one would make a dead stream look fresh.
        if rep is None or rep.total_rows == 0 or (rep.rows == 0 and not report.final):
            continue
        key = spec.key(symbol)
        last_ts = rep.last_ts
        events.append(
            AssetMaterialization(
                asset_key=AssetKey(key.asset_key_path),
                partition=iso_date(last_ts) if last_ts is not None else None,
                metadata={
                    "rows": rep.rows,
                    "total_rows": rep.total_rows,
                    "last_ts": iso_datetime(last_ts) if last_ts is not None else "",
                    "lag_s": round(rep.lag_s, 3) if rep.lag_s is not None else -1.0,
                    "reconnects": report.reconnects,
                    "healed_gaps": rep.healed_gaps,
                    "healed_rows": rep.healed_rows,
                    "unhealed_gaps": rep.unhealed_gaps,
                    "resyncs": rep.resyncs,
                    "connected": report.connected,
                    "last_message_age_s": round(age, 3) if age is not None else "never",
                    "final": report.final,
                },
            )
        )
    return events


def describe_flush(spec: StreamSpec, report: FlushReport) -> str:
    """The run-log line of one flush; it leads with the trouble when not connected."""
    age = report.last_message_age_s
    last = f"{age:.1f} s ago" if age is not None else "never"
    lag = f"{report.lag_s:.3f} s" if report.lag_s is not None else "-"
    figures = (
        f"{report.rows} rows (total {report.total_rows}), last message {last}, lag {lag}, "
        f"reconnects {report.reconnects}, healed gaps {report.healed_gaps}"
    )
    if report.unhealed_gaps:  # data lost for good (liquidations: no REST to heal from)
        figures += f", UNHEALED gaps {report.unhealed_gaps} (see the no_holes check)"
    if report.connected:
        return f"{spec.name}: {figures}"
    down = f" for {report.down_s:.0f} s" if report.down_s is not None else ""
    retry = (
        f"retrying in {report.retry_in_s:.0f} s" if report.retry_in_s is not None else "retrying"
    )
    return (
        f"{spec.name}: NOT CONNECTED{down} (last error: {report.last_error or 'none yet'}; "
        f"{retry}, {report.connect_attempts} attempts); {figures}"
    )


def stream_end_problem(spec: StreamSpec, final: FlushReport) -> str | None:
    """Why a stream run that stopped must not end green, or None.

    * it received no data message at all (never connected, or connected to nothing);
    * it was not connected at the stop, for longer than ``OUTAGE_FAIL_S``: the data of
      that outage is missing until the next run heals it from REST.

    A run that lost its connection and got it back is green (the gap was healed); a
    connection that never returns fails the run in the WebSocket client after its
    retry budget (``WsConfig.max_attempts``), and the sensor starts a new run.
    """
    if final.messages == 0:
        if final.connect_attempts or not final.connected:
            why = (
                f"never connected to {spec.exchange} (last error: "
                f"{final.last_error or 'none'}); check ws_url and the network"
            )
        else:
            why = (
                f"connected, but no message came for {', '.join(map(str, spec.symbols))}; "
                "check the symbols and the ws_url"
            )
        return f"{spec.name} received nothing in {final.elapsed_s:.0f} s: {why}"
    if not final.connected and (final.down_s or 0.0) > OUTAGE_FAIL_S:
        return (
            f"{spec.name} had lost its connection {final.down_s:.0f} s before it stopped "
            f"(last error: {final.last_error or 'none'}); the next run heals the gap from REST"
        )
    return None


def health_metadata(report: FlushReport) -> dict[str, Any]:
    age = report.last_message_age_s
    return {
        "connected": report.connected,
        "messages": report.messages,
        "last_message_age_s": round(age, 3) if age is not None else "never",
        "last_error": report.last_error,
        "connect_attempts": report.connect_attempts,
        "total_rows": report.total_rows,
    }
