"""Resource monitor: psutil samples of the process tree, claim throttling with hysteresis, slot scaling, peaks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from traxd.logging import get_logger

log = get_logger("resources")


@dataclass(frozen=True)
class Sample:
    """One reading: RSS of this process and its children, their CPU (% of the whole machine), free system memory."""

    rss_mb: float
    cpu_percent: float
    available_mb: float


Sampler = Callable[[], Sample]


@dataclass(frozen=True)
class Limits:
    """When to stop claiming and when to scale: limits, the hysteresis ratio, and how long pressure must last."""

    memory_mb: float = 2048.0
    cpu_percent: float = 90.0
    resume_ratio: float = 0.9  # claim again only once below 90% of the limit
    min_available_mb: float = 128.0  # the machine itself is nearly out of memory
    scale_down_after: int = 3  # consecutive samples under pressure before dropping a slot
    scale_up_after: int = 3  # consecutive calm samples before adding one back
    min_slots: int = 1


@dataclass(frozen=True)
class GateState:
    """The monitor's decision: claim or not (and why), how many slots may run, and the streaks behind it."""

    slots: int
    throttled: bool = False
    reason: str | None = None
    pressure_streak: int = 0
    calm_streak: int = 0


def pressure(sample: Sample, limits: Limits, ratio: float = 1.0) -> str | None:
    """Why this sample is over the limits scaled by `ratio`, or None when it is under them."""
    if sample.rss_mb > limits.memory_mb * ratio:
        return f"memory {sample.rss_mb:.0f}MB over limit {limits.memory_mb:.0f}MB"
    if sample.cpu_percent > limits.cpu_percent * ratio:
        return f"CPU {sample.cpu_percent:.0f}% over limit {limits.cpu_percent:.0f}%"
    if sample.available_mb < limits.min_available_mb:
        return f"system memory low ({sample.available_mb:.0f}MB available)"
    return None


def decide(state: GateState, sample: Sample, limits: Limits, max_slots: int) -> GateState:
    """Pure: throttle above the limits, resume only below resume_ratio of them; scale slots under lasting pressure."""
    over = pressure(sample, limits)
    still = pressure(sample, limits, limits.resume_ratio)
    throttled = over is not None or (state.throttled and still is not None)
    reason = (over or still) if throttled else None
    if throttled:
        streak, calm = state.pressure_streak + 1, 0
    elif still is None:
        streak, calm = 0, state.calm_streak + 1
    else:  # inside the hysteresis band: hold what we have
        streak, calm = 0, 0
    slots = min(state.slots, max_slots)
    if streak >= limits.scale_down_after and slots > limits.min_slots:
        slots, streak = slots - 1, 0
    elif calm >= limits.scale_up_after and slots < max_slots:
        slots, calm = slots + 1, 0
    return GateState(slots, throttled, reason, streak, calm)


class TreeSampler:
    """psutil readings of this process and its children (FFmpeg and friends); CPU is normalised to the machine."""

    def __init__(self, pid: int | None = None) -> None:
        self._root = psutil.Process(pid)
        self._procs: dict[int, psutil.Process] = {}
        self._cpus = psutil.cpu_count() or 1
        self._root.cpu_percent(None)

    def __call__(self) -> Sample:
        """Take one reading (CPU% is measured since the previous call)."""
        rss, cpu = self._usage(self._root)
        seen = {self._root.pid}
        for child in self._root.children(recursive=True):
            proc = self._procs.setdefault(child.pid, child)
            seen.add(child.pid)
            r, c = self._usage(proc)
            rss, cpu = rss + r, cpu + c
        self._procs = {pid: p for pid, p in self._procs.items() if pid in seen}
        return Sample(rss / 1e6, cpu / self._cpus, psutil.virtual_memory().available / 1e6)

    @staticmethod
    def _usage(proc: psutil.Process) -> tuple[float, float]:
        try:
            with proc.oneshot():
                return float(proc.memory_info().rss), proc.cpu_percent(None)
        except psutil.Error:
            return 0.0, 0.0


@dataclass
class Peaks:
    """The highest readings seen."""

    rss_mb: float = 0.0
    cpu_percent: float = 0.0
    min_slots: int = 0


class ResourceMonitor:
    """Samples at most every `interval` seconds; `gate()` and `slot_limit()` plug into the Pool."""

    def __init__(
        self,
        limits: Limits,
        max_slots: int,
        sampler: Sampler | None = None,
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.max_slots = max_slots
        self.sampler = sampler or TreeSampler()
        self.interval = interval
        self.monotonic = monotonic
        self.state = GateState(max_slots)
        self.last: Sample | None = None
        self.peaks = Peaks(min_slots=max_slots)
        self._sampled_at: float | None = None
        self._lock = threading.Lock()

    def sample(self, force: bool = False) -> Sample:
        """A fresh reading when the interval has passed (or forced); updates the decision and the peaks."""
        with self._lock:
            now = self.monotonic()
            fresh = self._sampled_at is not None and now - self._sampled_at < self.interval
            if not force and self.last is not None and fresh:
                return self.last
            reading = self.sampler()
            self._sampled_at, self.last = now, reading
            self._record(reading)
            return reading

    def _record(self, reading: Sample) -> None:
        before = self.state
        self.state = decide(before, reading, self.limits, self.max_slots)
        self.peaks.rss_mb = max(self.peaks.rss_mb, reading.rss_mb)
        self.peaks.cpu_percent = max(self.peaks.cpu_percent, reading.cpu_percent)
        self.peaks.min_slots = min(self.peaks.min_slots, self.state.slots)
        if self.state.throttled != before.throttled:
            event = "claims_throttled" if self.state.throttled else "claims_resumed"
            log.warning(event, reason=self.state.reason or before.reason, rss_mb=round(reading.rss_mb, 1),
                        cpu_percent=round(reading.cpu_percent, 1))  # fmt: skip
        if self.state.slots != before.slots:
            log.warning("slots_scaled", slots=self.state.slots, was=before.slots, reason=self.state.reason)

    def gate(self) -> str | None:
        """Pool gate: a reason not to claim now, or None."""
        self.sample()
        return self.state.reason if self.state.throttled else None

    def rss_mb(self) -> float:
        """Pool hook: RSS of the process tree now (a sample at most `interval` old), to measure a run's memory."""
        return self.sample().rss_mb

    def slot_limit(self) -> int:
        """Pool hook: how many slots may run now (lowered under lasting pressure)."""
        self.sample()
        return self.state.slots
