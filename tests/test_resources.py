"""Resource monitor: hysteresis, slot scaling and peaks as pure logic, plus real claims stopped by a low limit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.resources import (
    GateState,
    Limits,
    ResourceMonitor,
    Sample,
    TreeSampler,
    decide,
)
from traxd.types import NewTask, TaskType

LIMITS = Limits(memory_mb=1000, cpu_percent=90, resume_ratio=0.9, scale_down_after=2, scale_up_after=2)


def mem(mb: float, cpu: float = 10.0, available: float = 10_000.0) -> Sample:
    return Sample(mb, cpu, available)


def run(samples: list[Sample], max_slots: int = 4) -> list[GateState]:
    state, out = GateState(max_slots), []
    for s in samples:
        state = decide(state, s, LIMITS, max_slots)
        out.append(state)
    return out


def test_throttle_above_limit_resume_only_below_hysteresis() -> None:
    states = run([mem(500), mem(1001), mem(950), mem(901), mem(899)])
    assert [s.throttled for s in states] == [False, True, True, True, False]
    assert states[1].reason == "memory 1001MB over limit 1000MB"


def test_in_band_without_prior_pressure_keeps_claiming() -> None:
    assert not run([mem(950)])[0].throttled


@pytest.mark.parametrize(
    "sample, reason",
    [(mem(10, cpu=95), "CPU 95% over limit 90%"), (mem(10, available=50), "system memory low (50MB available)")],
)
def test_cpu_and_system_memory_pressure(sample: Sample, reason: str) -> None:
    state = run([sample])[0]
    assert state.throttled and state.reason == reason


def test_scales_down_step_by_step_under_lasting_pressure_and_back_up() -> None:
    states = run([mem(2000)] * 6 + [mem(100)] * 6, max_slots=4)
    assert [s.slots for s in states] == [4, 3, 3, 2, 2, 1, 1, 2, 2, 3, 3, 4]


def test_never_below_min_slots_nor_above_max() -> None:
    assert run([mem(2000)] * 20, max_slots=2)[-1].slots == 1
    assert run([mem(10)] * 20, max_slots=2)[-1].slots == 2


def test_band_resets_streaks() -> None:
    states = run([mem(2000), mem(950), mem(950), mem(850), mem(950), mem(850)], max_slots=4)
    assert [s.slots for s in states] == [4, 3, 3, 3, 3, 3]  # throttled twice -> one step down, then no calm pair


class Script:
    """An injected sampler that plays back readings."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = list(samples)
        self.calls = 0

    def __call__(self) -> Sample:
        self.calls += 1
        return self.samples[min(self.calls - 1, len(self.samples) - 1)]


def test_monitor_samples_at_interval_gates_and_records_peaks() -> None:
    now = [0.0]
    script = Script([mem(200, cpu=20), mem(1500, cpu=95), mem(100, cpu=5)])
    mon = ResourceMonitor(LIMITS, 4, sampler=script, interval=1.0, monotonic=lambda: now[0])
    assert mon.gate() is None
    assert mon.gate() is None and script.calls == 1  # cached within the interval
    now[0] = 1.0
    assert mon.gate() == "memory 1500MB over limit 1000MB"
    assert mon.slot_limit() == 4
    now[0] = 2.0
    assert mon.gate() is None
    assert (mon.peaks.rss_mb, mon.peaks.cpu_percent) == (1500, 95)


def test_tree_sampler_reads_this_process() -> None:
    sampler = TreeSampler()
    s = sampler()
    assert 5 < s.rss_mb < 2000 and s.available_mb > 0 and s.cpu_percent >= 0


def test_the_heartbeat_counts_what_child_processes_use(store: Store) -> None:
    # FFmpeg runs as a child: the RSS and CPU a daemon reports in `traxctl status` must include it, in the same
    # units as --cpu-limit (percent of the whole machine).
    burn = "b = b'x' * 150_000_000; print('ready', flush=True)\nwhile True: pass"
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        pool = Pool(store, Registry({}))
        spent = psutil.Process(child.pid).cpu_times
        pool.maintenance.beat()  # the first reading: CPU is measured from here
        before, started = spent().user, time.monotonic()
        while spent().user - before < 0.5:
            time.sleep(0.05)
        pool.maintenance.beat()
        share = (spent().user - before) / (time.monotonic() - started) * 100 / (psutil.cpu_count() or 1)
        (row,) = store.workers()
    finally:
        child.kill()
        child.wait()
    assert row.rss_mb > 150 and row.cpu_percent > share / 2


# -- the hooks in the real pool -----------------------------------------------------------------
@pytest.fixture
def tasks(store: Store) -> Iterator[Store]:
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"n": i}) for i in range(6)])
    yield store


def wait_for(cond: object, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_real_process_over_a_low_memory_limit_claims_nothing(tasks: Store) -> None:
    mon = ResourceMonitor(Limits(memory_mb=1), 4, interval=0.0)  # this test process is far above 1 MB
    ran: list[int] = []
    reasons: list[str | None] = []

    def gate() -> str | None:
        reasons.append(mon.gate())
        return reasons[-1]

    pool = Pool(tasks, Registry({TaskType.TRANSCRIBE: lambda ctx, p: ran.append(1) or {}}),
                PoolConfig(slots=4, idle_seconds=0.01), PoolWiring(gate=gate))  # fmt: skip
    thread = threading.Thread(target=pool.run, kwargs={"drain": True})
    thread.start()
    wait_for(lambda: len(reasons) >= 3)
    assert ran == [] and all(r and r.startswith("memory ") for r in reasons[:3])
    mon.limits = Limits(memory_mb=100_000)  # pressure gone: claims resume and the pool drains
    thread.join(60)
    assert not thread.is_alive() and len(ran) == 6 and mon.peaks.rss_mb > 1


def test_slot_limit_caps_concurrency(tasks: Store) -> None:
    lock, running, peak = threading.Lock(), [0], [0]

    def handler(ctx: TaskContext, payload: dict) -> dict:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)  # overlap is what we measure; the assertion is on the count, not the time
        with lock:
            running[0] -= 1
        return {}

    pool = Pool(tasks, Registry({TaskType.TRANSCRIBE: handler}), PoolConfig(slots=4, idle_seconds=0.01),
                PoolWiring(slot_limit=lambda: 2))  # fmt: skip
    stats = pool.run(drain=True)
    assert stats.succeeded == 6 and peak[0] <= 2
    assert pool.slots_now() == 2
