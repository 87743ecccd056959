"""GET /metrics: the operations figures (``newsletter.reports.operations``) in Prometheus's text format.

Counts only, but they reveal the clinic's business volume: served only to
``Authorization: Bearer <NEWSLETTER_METRICS_TOKEN>``; without the setting the route answers 404, as
if it did not exist. Every scrape reads the database afresh (a registry of its own per scrape), so
whichever process answers, the figures are those of every process.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings
from newsletter.reports.operations import EVENT_WINDOW, OperationsFigures, read_figures

router = APIRouter()
log = logging.getLogger("newsletter.metrics")


def bearer_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:  # sync: FastAPI runs it in a worker thread (database reads)
    settings: Settings = request.app.state.settings
    if settings.metrics_token is None:
        raise HTTPException(status_code=404)
    if not bearer_matches(request.headers.get("authorization"), settings.metrics_token.get_secret_value()):
        return PlainTextResponse("a valid bearer token is required\n", status_code=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    started = time.perf_counter()
    try:
        figures = read_figures(request.app.state.db)
    except OperationalError as exc:  # the database is down or unreadable: this scrape fails, nothing else
        log.error("metrics: the database could not be read (%s)", type(exc).__name__)
        return PlainTextResponse("the database could not be read\n", status_code=503)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(figures, time.perf_counter() - started))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class FiguresCollector(Collector):
    """One scrape's figures as metric families (read once, before rendering)."""

    def __init__(self, figures: OperationsFigures, read_seconds: float) -> None:
        self.figures = figures
        self.read_seconds = read_seconds

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        deliveries = GaugeMetricFamily("newsletter_deliveries", "Deliveries in the ledger by state and kind "
                                       "(issue, or sequence step).", labels=["state", "kind"])
        for (state, kind), count in sorted(f.deliveries.items()):
            deliveries.add_metric([state, kind], count)
        yield deliveries

        oldest = GaugeMetricFamily("newsletter_oldest_due_seconds", "Age of the oldest queued delivery that is due, "
                                   "among issues that are sending and steps of active sequences (0: none).",
                                   labels=["kind"])
        for kind, seconds in sorted(f.oldest_due_seconds.items()):
            oldest.add_metric([kind], seconds)
        yield oldest

        yield GaugeMetricFamily("newsletter_unknown_batches", "Batches held as unknown: the request left and no "
                                "answer came; resolved by the provider's events or by staff.", value=f.unknown_batches)
        yield GaugeMetricFamily("newsletter_unknown_deliveries", "Deliveries in batches held as unknown.",
                                value=f.unknown_rows)
        yield GaugeMetricFamily("newsletter_unknown_oldest_seconds", "Seconds since the oldest batch held as unknown "
                                "was given up on (0: none).", value=f.oldest_unknown_seconds)

        submitted = GaugeMetricFamily("newsletter_submitted_recipients", "Deliveries the provider accepted within "
                                      "the window (by submitted_at, every process).", labels=["window"])
        for seconds, count in sorted(f.submitted.items()):
            submitted.add_metric([_window(seconds)], count)
        yield submitted

        errors = GaugeMetricFamily("newsletter_provider_errors", "Provider requests (batches) that ended in an "
                                   "error of this kind, and stops for a refused API key (auth), ever; watch its "
                                   "increase. Rate limits and retried errors are not recorded.", labels=["kind"])
        for kind, count in sorted(f.provider_errors.items()):
            errors.add_metric([kind], count)
        yield errors

        window = _window(int(EVENT_WINDOW.total_seconds()))
        events = GaugeMetricFamily("newsletter_webhook_events", "SendGrid events stored whose provider time is "
                                   "within the window, by type.", labels=["type", "window"])
        for kind, count in sorted(f.webhook_events.items()):
            events.add_metric([kind, window], count)
        yield events
        if f.webhook_newest_event_at is not None:
            yield GaugeMetricFamily("newsletter_webhook_last_event_timestamp_seconds", "Provider time of the newest "
                                    "SendGrid event stored (Unix time).", value=f.webhook_newest_event_at.timestamp())
            yield GaugeMetricFamily("newsletter_webhook_lag_seconds", "How long the newest SendGrid event took to "
                                    "reach us: receipt time minus the provider's time.", value=f.webhook_lag_seconds)

        holders = InfoMetricFamily("newsletter_lease", "Who holds each lease (the scheduler's elects the one "
                                   "active scheduler).", labels=["lease"])
        expiry = GaugeMetricFamily("newsletter_lease_expires_in_seconds", "Seconds until each lease lapses; "
                                   "negative: it lapsed, nobody holds it.", labels=["lease"])
        for lease in sorted(f.leases, key=lambda lease: lease.name):
            holders.add_metric([lease.name], {"holder": lease.holder})
            expiry.add_metric([lease.name], lease.expires_in_seconds)
        yield holders
        yield expiry

        yield GaugeMetricFamily("newsletter_sending_stopped", "1 while all sending is stopped (e.g. the provider "
                                "refused the API key) until 'newsletter sending resume'.", value=int(f.sending_stopped))
        issues = GaugeMetricFamily("newsletter_issues", "Issues by status (paused: stopped by the circuit breaker "
                                   "or by staff).", labels=["status"])
        for status, count in sorted(f.issues.items()):
            issues.add_metric([status], count)
        yield issues
        yield GaugeMetricFamily("newsletter_metrics_read_seconds", "How long this scrape took to read the figures "
                                "from the database.", value=self.read_seconds)


def _window(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
