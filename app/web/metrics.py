"""Prometheus metrics: request latency from every web process, and the service's own counts
(verdicts, submit-to-verdict latency, queue depth, live workers) read from Redis per scrape."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import redis
from celery import Celery
from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from app.storage import intake
from app.storage.submissions import (
    LATENCY_BUCKETS,
    read_latency_histogram,
    read_verdict_counts,
)
from app.web.api.openapi import documented
from app.web.auth import check_operator
from app.worker.status import live_workers, queue_depths

#: The methods counted by name; any other is counted as "other", so that no client can add
#: series (every label value is a series kept for good in the multiprocess files).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class StoreCollector:
    """Metrics kept in Redis by the workers, so every web process reports the same numbers."""

    def __init__(self, client: redis.Redis, celery_app: Celery, partitions: int) -> None:
        self.client = client
        self.celery_app = celery_app
        self.partitions = partitions

    def collect(self) -> Iterator[Metric]:
        submissions = CounterMetricFamily(
            "hiscore_submissions", "Submissions settled by a worker.", labels=["verdict", "code"]
        )
        counts = read_verdict_counts(self.client, self.partitions)
        for name, settled in counts.items():
            verdict, _, code = name.partition(":")
            submissions.add_metric([verdict, code], int(settled))
        yield submissions

        raw = read_latency_histogram(self.client, self.partitions)
        cumulative, buckets = 0, []
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            cumulative += int(raw.get(f"le:{bound}", 0))
            buckets.append((str(bound), cumulative))
        yield HistogramMetricFamily(
            "hiscore_ingest_latency_seconds",
            "From a submission's arrival at the web to its verdict.",
            buckets=buckets,
            sum_value=float(raw.get("sum", 0)),
        )

        depth = GaugeMetricFamily("hiscore_queue_depth", "Messages waiting.", labels=["queue"])
        for queue, count in queue_depths(self.celery_app).items():
            depth.add_metric([queue], count)
        yield depth
        backlog = GaugeMetricFamily(
            "hiscore_ingest_backlog",
            "Submissions on the ingest streams: waiting for a worker, or being processed.",
            labels=["state"],
        )
        partition_backlog = GaugeMetricFamily(
            "hiscore_ingest_partition_backlog",
            "Submissions on one ingest partition's stream, by state.",
            labels=["partition", "state"],
        )
        found = intake.backlog(self.client, self.partitions)
        for state, count in found.totals().items():
            backlog.add_metric([state], count)
        for partition, counts in found.partitions.items():
            for state, count in counts.items():
                partition_backlog.add_metric([str(partition), state], count)
        yield backlog
        yield partition_backlog
        yield GaugeMetricFamily(
            "hiscore_workers_alive",
            "Workers with a fresh heartbeat.",
            value=len(live_workers(self.client)),
        )


def init_metrics(app: Flask) -> None:
    """Time every request, and serve ``/metrics``."""
    # With gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR so that every worker
    # process writes its samples where any of them can read them all.
    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    own = CollectorRegistry()
    latency = Histogram(
        "hiscore_http_request_duration_seconds",
        "Time to answer an HTTP request.",
        ["method", "endpoint", "status"],
        registry=None if multiprocess else own,
    )

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None:
            # An endpoint is one of the app's own names, never the path the client sent.
            endpoint = request.url_rule.endpoint if request.url_rule else "unmatched"
            method = request.method if request.method in METHODS else "other"
            # A JSONP error goes out as 200 (see app/web/api/jsonp.py); count what it answered.
            status = g.get("answered_status", response.status_code)
            latency.labels(method, endpoint, str(status)).observe(time.perf_counter() - started)
        return response

    store = CollectorRegistry()
    store.register(
        StoreCollector(
            app.extensions["hiscore.redis"],
            app.extensions["celery"],
            app.config["INGEST_PARTITIONS"],
        )
    )

    @documented(
        "meta",
        "Prometheus metrics (the operator token unless HISCORE_METRICS_PUBLIC)",
        {200: ("The Prometheus text format.", {"text/plain": {"schema": {"type": "string"}}})},
        problems=[401, 403],
        operator=True,
    )
    def metrics() -> Response:
        # Counts, queues and endpoint names are for the operator, unless opened on purpose
        # (a scraper on a private network that cannot send a token).
        if not app.config["METRICS_PUBLIC"]:
            check_operator()
        if multiprocess:
            requests_registry = CollectorRegistry()
            MultiProcessCollector(requests_registry)
        else:
            requests_registry = own
        body = generate_latest(requests_registry) + generate_latest(store)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics)
