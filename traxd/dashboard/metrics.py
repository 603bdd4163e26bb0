"""`/metrics` in the Prometheus text format, read from the database at each scrape (prometheus_client renders it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from traxd.queue.reads import Reader
from traxd.queue.transitions import WORKER_LOST
from traxd.waiting import KINDS, Waiting


class QueueCollector(Collector):
    """Queue depth by state and type, jobs by state, throughput, failures, lease rescues, API errors, audio seconds."""

    def __init__(self, open_reader: Callable[[], Reader], api_errors: Callable[[], dict[int, int]],
                 waiting: Callable[[], Waiting | None] = lambda: None) -> None:  # fmt: skip
        self.open_reader = open_reader
        self.api_errors = api_errors
        self.waiting = waiting

    def collect(self) -> Iterator[Any]:
        """One read of the database per scrape."""
        reader = self.open_reader()
        try:
            with reader.snapshot():
                tasks, jobs = reader.task_counts(), reader.job_counts()
                entries, audio = reader.error_counts(), reader.audio_seconds()
        finally:
            reader.close()
        yield from _depth(tasks, jobs)
        yield from _history(tasks, entries, audio, self.api_errors())
        yield _waiting(self.waiting())


def _waiting(note: Waiting | None) -> Any:
    """1 for each reason this machine's daemon holds work back now: power (run_on), hours, thermal (fewer slots)."""
    gauge = GaugeMetricFamily("trax_waiting", "Why this machine's daemon holds work back now (1) or not (0).",
                              labels=["reason"])  # fmt: skip
    now = note.kinds() if note else set()
    for kind in KINDS:
        gauge.add_metric([kind], 1.0 if kind in now else 0.0)
    return gauge


def _depth(tasks: list[tuple[str, str, int]], jobs: dict[str, int]) -> Iterator[Any]:
    depth = GaugeMetricFamily("trax_tasks", "Tasks in the queue by state and type.", labels=["state", "type"])
    for task_type, state, n in tasks:
        depth.add_metric([state, task_type], n)
    yield depth
    by_job = GaugeMetricFamily("trax_jobs", "Jobs (inputs) by state.", labels=["state"])
    for state, n in sorted(jobs.items()):
        by_job.add_metric([state], n)
    yield by_job


def _history(tasks: list[tuple[str, str, int]], entries: list[tuple[str | None, int | None, int]], audio: float,
             dashboard_errors: dict[int, int]) -> Iterator[Any]:  # fmt: skip
    done = CounterMetricFamily("trax_tasks_finished", "Tasks that finished, by outcome and type (throughput).",
                               labels=["state", "type"])  # fmt: skip
    for task_type, state, n in tasks:
        if state in ("succeeded", "failed", "cancelled"):
            done.add_metric([state, task_type], n)
    yield done
    attempts = CounterMetricFamily("trax_task_errors", "Failed attempts recorded in error histories, by error type.",
                                   labels=["error"])  # fmt: skip
    names: Counter[str] = Counter()
    for t, _, n in entries:
        names[str(t or "Error")] += n
    for name, n in sorted(names.items()):
        attempts.add_metric([name], n)
    yield attempts
    rescues = sum(n for t, _, n in entries if t == WORKER_LOST)
    yield CounterMetricFamily("trax_lease_rescues", "Tasks taken back from a lost worker.", value=rescues)
    api = CounterMetricFamily("trax_api_errors", "Errors answered by an API (OpenAI, DeepSeek, …) by HTTP status.",
                              labels=["status"])  # fmt: skip
    # The adapter that saw the answer recorded its status in the entry (errors.TaskError.http_status).
    statuses: Counter[int] = Counter()
    for _, s, n in entries:
        if s is not None:
            statuses[s] += n
    for status, n in sorted(statuses.items()):
        api.add_metric([str(status)], n)
    yield api
    http = CounterMetricFamily("trax_dashboard_errors", "Dashboard responses with an error status.", labels=["status"])
    for status, n in sorted(dashboard_errors.items()):
        http.add_metric([str(status)], n)
    yield http
    yield CounterMetricFamily("trax_audio_seconds", "Seconds of audio transcribed.", value=audio)


def render(collector: QueueCollector) -> bytes:
    """The text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
