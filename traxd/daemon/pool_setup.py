"""Setting up a pool from settings: the one place the daemon, `trax batch` and the Python API get theirs from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from traxd.config import Settings
from traxd.daemon.machine import MachineGate, machine_gate
from traxd.daemon.memory_gate import MemoryGate
from traxd.daemon.owner import Owner
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.daemon.runner import Outcome
from traxd.handlers import default_type_limits
from traxd.handlers.registry import Registry
from traxd.queue.store import Store
from traxd.resources import Limits, ResourceMonitor, Sampler
from traxd.types import TaskType


def pool_config(settings: Settings, group: str | None = None) -> PoolConfig:
    """Slots, lease, grace, per-type limits and successor pinning from the settings.

    `group`: a batch's own job group, whose every stage it runs to the end, so TRAX_TASK_TYPES (which stages
    this machine's daemon takes from the shared queue) applies only without one.
    """
    own = tuple(TaskType.parse(t) for t in settings.task_types) if group is None else ()
    return PoolConfig(slots=settings.workers, lease_seconds=settings.lease_seconds,
                      grace_seconds=settings.grace_seconds, types=own or None, group=group,
                      type_limits=default_type_limits(settings),
                      pin_successors=not settings.shared_storage, settings=settings)  # fmt: skip


def resource_monitor(settings: Settings, sampler: Sampler | None = None) -> ResourceMonitor:
    """The memory and CPU limits of the settings, over their worker count."""
    limits = Limits(memory_mb=settings.memory_limit_mb, cpu_percent=settings.cpu_limit_percent)
    return ResourceMonitor(limits, settings.workers, sampler)


def daemon_pool(settings: Settings, store: Store, registry: Registry, machine: MachineGate | None = None,
                on_outcome: Callable[[Outcome, bool], None] | None = None) -> Pool:  # fmt: skip
    """The daemon's pool: the whole queue, held back by this machine's rules (power, hours, heat) and resources."""
    monitor = resource_monitor(settings)
    machine = machine or machine_gate(settings)

    def gate() -> str | None:
        return machine.gate() or monitor.gate()

    memory = MemoryGate(store, settings, monitor.rss_mb, Owner.current().host)

    def type_gate(types: list[TaskType], running: int) -> dict[TaskType, str]:
        held = memory(types, running)
        machine.note_memory(held.get(TaskType.TRANSCRIBE))  # status, the dashboard and /metrics show it
        return held

    wiring = PoolWiring(gate=gate, slot_limit=monitor.slot_limit, type_limit=machine.local_limit,
                        stop_local=machine.stop_local, on_outcome=on_outcome, memory=monitor.rss_mb,
                        type_gate=type_gate)  # fmt: skip
    return Pool(store, registry, replace(pool_config(settings), notify=True), wiring)
