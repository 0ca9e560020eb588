"""Prometheus metrics at /metrics (prometheus_client's text format).

One collector reads everything at scrape time from where the desk already keeps it: today's orders
and their send latency from the database, queues, workers, the feed and the open-socket counts from
Redis. prometheus_client's own counters and histograms live in one process's memory; the desk
sends orders from several worker processes, on any host, and any web process may be scraped. Its
multiprocess mode would need every process to share one directory (one host) and to be the one
scraped. Reading the shared stores instead gives the same answer from any web process, and no
worker pays for metrics in the send path.

The order counts and the latency histogram cover the IST day (they restart at midnight, which
Prometheus's rate() and increase() treat as a counter reset). Labels carry states, brokers, queues
and roles only: never a client's name or code, a user, or any secret.

Access: `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time; a wrong or missing
token, or none configured, is a 401), or an admin's login session in a browser (no Authorization
header: the login page for the anonymous, 403 for other roles).
"""

from __future__ import annotations

import hmac
import logging
from functools import wraps

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from webapp.extensions import get_redis, get_rq_redis
from webapp.health import overview
from webapp.health.checks import check_database
from webapp.permissions import requires

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

PERMISSION = "health.detailed"  # the admins' (a login session without a token)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DeskCollector(Collector):
    """Everything below, read when Prometheus scrapes (inside the request's app context)."""

    def __init__(self, feed_source: str, own_sockets: int = 0):
        self.feed_source = feed_source
        self.own_sockets = own_sockets

    def collect(self):
        up = GaugeMetricFamily("fanout_source_up", "1 when the scrape could read this store", labels=["source"])
        database = check_database() == "ok"
        up.add_metric(["database"], 1 if database else 0)
        if database:
            yield from self._orders()
        try:
            yield from list(self._redis())
            up.add_metric(["redis"], 1)
        except Exception as exc:  # noqa: BLE001  (Redis away: the database's metrics still answer)
            log.warning("op=metrics source=redis error=%s", type(exc).__name__)
            up.add_metric(["redis"], 0)
        yield up

    def _orders(self):
        orders = GaugeMetricFamily(
            "fanout_orders_today",
            "Child orders created since IST midnight, by current state and broker",
            labels=["state", "broker"],
        )
        for state, broker, count in overview.orders_today():
            orders.add_metric([state, broker], count)
        yield orders
        latency = HistogramMetricFamily(
            "fanout_order_send_latency_seconds",
            "Seconds from a child's creation (queued by the ticket) to the broker's acknowledgement, "
            "children acknowledged today (IST)",
            labels=["broker"],
        )
        for broker, values in sorted(overview.send_latencies().items()):
            buckets = [(str(bound), sum(1 for v in values if v <= bound)) for bound in LATENCY_BUCKETS]
            buckets.append(("+Inf", len(values)))
            latency.add_metric([broker], buckets, sum(values))
        yield latency

    def _redis(self):
        redis, rq_redis = get_redis(), get_rq_redis()
        depth = GaugeMetricFamily(
            "fanout_queue_jobs", "Jobs per RQ queue: queued, started, failed, scheduled", labels=["queue", "state"]
        )
        for row in overview.queues(rq_redis):
            for state in ("queued", "started", "failed", "scheduled"):
                depth.add_metric([row.name, state], getattr(row, state))
        yield depth
        workers = GaugeMetricFamily("fanout_rq_workers", "Live RQ workers by state", labels=["state"])
        for state, count in sorted(overview.worker_states(rq_redis).items()):
            workers.add_metric([state], count)
        yield workers
        processes = GaugeMetricFamily(
            "fanout_processes", "Processes with a recent heartbeat, per Procfile role", labels=["role"]
        )
        for row in overview.roles(redis, rq_redis):
            processes.add_metric([row.role], sum(1 for p in row.processes if p.state != "missing"))
        yield processes
        feed = overview.feed(redis, self.feed_source)
        if feed.lag is not None:
            yield GaugeMetricFamily(
                "fanout_feed_lag_seconds", "Seconds since the feed's last round of quotes", value=feed.lag
            )
        instruments = GaugeMetricFamily(
            "fanout_feed_instruments",
            "Instruments the feed is subscribed to (subscribed) and those that ticked in the last minute (ticking)",
            labels=["state"],
        )
        instruments.add_metric(["subscribed"], feed.subscribed)
        instruments.add_metric(["ticking"], feed.ticking)
        yield instruments
        overview.report_sockets(redis, self.own_sockets)  # this process's count, fresh
        yield GaugeMetricFamily(
            "fanout_open_sockets",
            "Browser and API sockets open across the web processes",
            value=overview.open_sockets(redis),
        )


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        DeskCollector(
            current_app.config.get("FEED_SOURCE", ""), overview.hub_sockets(current_app._get_current_object())
        )
    )
    return generate_latest(registry)


def _token() -> str:
    return current_app.config.get("METRICS_TOKEN") or ""


def token_or_admin(view):
    """A bearer token (METRICS_TOKEN) for Prometheus, else an admin's session (see the module)."""
    by_session = requires(PERMISSION)(view)

    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization")
        if header is None:
            return by_session(*args, **kwargs)
        scheme, _, given = header.partition(" ")
        expected = _token()
        ok = (
            bool(expected)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), expected.encode())
        )
        if not ok:
            return Response(
                "unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain"
            )
        return view(*args, **kwargs)

    wrapper.permission = PERMISSION
    return wrapper


@bp.route("/metrics")
@token_or_admin
def metrics():
    return Response(render_metrics(), mimetype=CONTENT_TYPE_LATEST)
