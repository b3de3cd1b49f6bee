"""Prometheus metrics of the registry and of a site, served at `/metrics` and `/internal/metrics`.

Each app keeps its metrics in a registry of its own (no global state). Events
are counted as they happen (requests, policy decisions, image bytes in and
out); states (jobs and steps by state, step durations, pending reviews and how
long decided ones took, replication, rejected rules, background failures) are
read from the site when scraped, so they are right after a restart too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from mahiru.errors import Internal
from mahiru.policy.decisions import Decision
from mahiru.storage import Database
from mahiru.storage.blobs import StreamCheck
from mahiru.storage.job_stats import job_state_counts, step_durations, step_state_counts
from mahiru.storage.reviews import pending_review_count, review_latencies

# No `*_created` series: they double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: The variable prometheus_client reads, when imported, for where processes share counts.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: Upper bounds (seconds) of the step duration histogram's buckets.
STEP_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
#: Upper bounds (seconds) of the review latency histogram's buckets: people decide in
#: minutes to days.
REVIEW_BUCKETS = (60.0, 600.0, 3600.0, 4 * 3600.0, 86_400.0, 3 * 86_400.0, 7 * 86_400.0)
#: Upper bounds (seconds) of the request latency histogram's buckets.
REQUEST_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0)


class ServiceMetrics:
    """The metrics every Mahiru service has: HTTP requests by route and status."""

    def __init__(self, shared_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # With several processes serving one site, every process's counts are kept in
        # files in `shared_dir` (prometheus_client's multiprocess mode) and a scrape of
        # any of them adds up all; the scrape-time collectors are this process's own.
        self._shared_dir = shared_dir
        self._scraped = self.registry
        if shared_dir is not None:
            _check_multiprocess(shared_dir)
            self._scraped = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self._scraped, path=str(shared_dir))  # type: ignore[no-untyped-call]
        self._requests = Counter(
            "mahiru_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "mahiru_http_request_duration_seconds",
            "Seconds from request to response head, by route template and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._sent = Counter(
            "mahiru_image_bytes_sent",
            "Bytes of images (assets and results) sent, by API (internal, external).",
            ["api"],
            registry=self.registry,
        )

    def request(
        self, route: str, method: str, status: int, seconds: float, sent: int | None
    ) -> None:
        """Count one answered request; `sent` is the size of an image it sent, if any."""
        self._requests.labels(route, method, str(status)).inc()
        self._latency.labels(route, method).observe(seconds)
        if sent is not None and route.endswith("/image") and status in (200, 206):
            api = "external" if route.startswith("/external/") else "internal"
            self._sent.labels(api).inc(sent)

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its content type."""
        return generate_latest(self._scraped), CONTENT_TYPE_LATEST


def _check_multiprocess(shared_dir: Path) -> None:
    """Refuse to count in a process that would keep its counts to itself."""
    counted_in_files = values.ValueClass is not values.MutexValue
    if counted_in_files and os.environ.get(MULTIPROCESS_VARIABLE) == str(shared_dir):
        return
    raise Internal(
        f"metrics shared in {shared_dir} need {MULTIPROCESS_VARIABLE} set to it before"
        " prometheus_client is imported (the process starting the workers sets it)"
    )


class SiteMetrics(ServiceMetrics):
    """A site's metrics: requests, plus policy decisions, transfers, jobs and replication."""

    def __init__(self, shared_dir: Path | None = None) -> None:
        super().__init__(shared_dir)
        self._decisions = Counter(
            "mahiru_policy_decisions",
            "Decisions taken by the site's policy engine, by action and outcome.",
            ["action", "outcome"],
            registry=self.registry,
        )
        self._received = Counter(
            "mahiru_image_bytes_received",
            "Bytes of images stored after passing the ingress check (uploads and fetches).",
            registry=self.registry,
        )

    def decision(self, decision: Decision) -> None:
        """Count one decision of the policy view."""
        outcome = "allowed" if decision.allowed else "denied"
        self._decisions.labels(decision.action, outcome).inc()

    def counting(self, check: Callable[[], StreamCheck]) -> Callable[[], StreamCheck]:
        """`check`, counting the bytes of every blob that passes it as received."""

        def make() -> StreamCheck:
            return _CountingCheck(check(), self._received.inc)

        return make

    def watch(self, source: SiteState) -> None:
        """Read the site's state from `source` at every scrape."""
        self._scraped.register(_SiteCollector(source))


@dataclass(frozen=True, slots=True)
class SiteState:
    """Where a site's metrics read its state from (set up by the composition root)."""

    database: Database
    site: str
    replication: Callable[[], list[ReplicationState]]
    rejected_rules: Callable[[], int]
    loop_failures: Callable[[], dict[str, int]]


#: One replication source: (name, version applied, seconds since its last success or
#: None, failed attempts in a row).
ReplicationState = tuple[str, int, float | None, int]


class _CountingCheck:
    """A stream check that reports the size of each blob it passes."""

    def __init__(self, inner: StreamCheck, count: Callable[[float], None]) -> None:
        self._inner = inner
        self._count = count
        self._size = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        self._inner.feed(chunk)
        self._size += len(chunk)

    def finish(self) -> None:
        self._inner.finish()
        self._count(float(self._size))


class _SiteCollector(Collector):
    """The state part of a site's metrics, read when scraped."""

    def __init__(self, state: SiteState) -> None:
        self._state = state

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time only: nothing to check names against

    def collect(self) -> Iterator[Metric]:
        state = self._state
        jobs = GaugeMetricFamily(
            "mahiru_jobs", "Jobs submitted at this site, by state.", labels=["state"]
        )
        for job_state, count in sorted(job_state_counts(state.database).items()):
            jobs.add_metric([job_state], count)
        yield jobs
        steps = GaugeMetricFamily(
            "mahiru_steps",
            "Steps known at this site, by the site running them and state.",
            labels=["site", "state"],
        )
        for (site, step_state), count in sorted(step_state_counts(state.database).items()):
            steps.add_metric([site, step_state], count)
        yield steps
        yield _histogram(
            "mahiru_step_duration_seconds",
            "Seconds from start to end of the steps this site ran.",
            step_durations(state.database, state.site),
            STEP_BUCKETS,
        )
        pending = GaugeMetricFamily(
            "mahiru_reviews_pending",
            "Reviews of results' release waiting for a reviewer's decision.",
        )
        pending.add_metric([], pending_review_count(state.database))
        yield pending
        yield _histogram(
            "mahiru_review_latency_seconds",
            "Seconds from request to decision of the reviews decided at this site.",
            review_latencies(state.database),
            REVIEW_BUCKETS,
        )
        version = GaugeMetricFamily(
            "mahiru_replication_version",
            "The version last applied from each source (the registry, each peer).",
            labels=["source"],
        )
        age = GaugeMetricFamily(
            "mahiru_replication_seconds_since_success",
            "Seconds since replication from each source last succeeded.",
            labels=["source"],
        )
        failing = GaugeMetricFamily(
            "mahiru_replication_failures",
            "Failed replication attempts in a row, by source.",
            labels=["source"],
        )
        for source, applied, since, failures in state.replication():
            version.add_metric([source], applied)
            if since is not None:
                age.add_metric([source], since)
            failing.add_metric([source], failures)
        yield from (version, age, failing)
        rejected = GaugeMetricFamily(
            "mahiru_rules_rejected", "Peers' rules rejected (bad signature or unreadable)."
        )
        rejected.add_metric([], state.rejected_rules())
        yield rejected
        loops = CounterMetricFamily(
            "mahiru_background_failures",
            "Background rounds that failed unexpectedly, by loop.",
            labels=["loop"],
        )
        for loop, count in sorted(state.loop_failures().items()):
            loops.add_metric([loop], count)
        yield loops


def _histogram(
    name: str, documentation: str, values: list[float], bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = [
        (str(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds
    ]
    buckets.append(("+Inf", float(len(values))))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(values))
