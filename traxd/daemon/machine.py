"""This machine's say on claiming: the run policy against the power source, quiet hours, and heat.

One object the pool is wired to (like the resource monitor): `gate()` gives the reason nothing new is claimed,
`local_limit()` lowers the slots of CPU-bound task types under thermal pressure, and `stop_local()` tells the
pool to stop local transcriptions at their next chunk under a `strict` policy. Power and heat are read at most
every `interval` seconds (the readers are parameters, so tests drive them with folders); what holds work back is
logged when it changes and left in $TRAX_HOME/waiting.json for `status`, the dashboard and `/metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from traxd import thermal
from traxd.config import Settings
from traxd.logging import get_logger
from traxd.power import Power, RunPolicy, parse_run_on, read_power, refusal
from traxd.schedule import Window, closed_reason, parse_window
from traxd.types import TaskType
from traxd.waiting import Waiting, write_note

log = get_logger("machine")
READ_EVERY = 3.0  # seconds between readings: claims resume well within 30 s of the charger coming back


@dataclass(frozen=True)
class Rules:
    """The machine's run policy and active hours (None: any time)."""

    policy: RunPolicy = field(default_factory=RunPolicy)
    hours: Window | None = None


class MachineGate:
    """Reads power and heat every `interval` seconds and answers the pool's gate, local limit and strict stop."""

    def __init__(self, rules: Rules, power: Callable[[], Power], heat: Callable[[], int], home: Path | None = None,
                 interval: float = READ_EVERY, now: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.rules = rules
        self.power, self.heat, self.home = power, heat, home
        self.interval = interval
        self.now = now
        self.state = Waiting()
        self.level = thermal.NOMINAL
        self._power = Power(True)
        self._read_at: float | None = None
        self._memory: str | None = None  # the memory gate's reason (traxd/daemon/memory_gate.py), for the note

    def refresh(self, force: bool = False) -> Waiting:
        """Read power and heat when the interval has passed; log and publish what changed."""
        at = time.monotonic()
        if not force and self._read_at is not None and at - self._read_at < self.interval:
            return self.state
        self._read_at = at
        self._power = self.power() if self.rules.policy.mode != "always" else Power(True)
        self.level = self.heat()
        self._publish(self._decide())
        return self.state

    def _decide(self) -> Waiting:
        power = refusal(self.rules.policy, self._power)
        hours = closed_reason(self.rules.hours, self.now()) if self.rules.hours else None
        kind = "power" if power else "hours" if hours else None
        lowered = {thermal.SERIOUS: "halved", thermal.CRITICAL: "one"}.get(self.level)
        return Waiting(power or hours, kind, thermal.NAMES[self.level], lowered, self._memory)

    def _publish(self, new: Waiting) -> None:
        if new == self.state:
            return
        if new.reason != self.state.reason:
            log.warning("claims_waiting" if new.reason else "claims_resumed", reason=new.reason or self.state.reason)
        if new.local_slots != self.state.local_slots:
            log.warning("local_slots_thermal", thermal=new.thermal, note=new.local_slots)
        self.state = new
        if self.home is not None:
            try:
                write_note(self.home, new)
            except OSError as exc:  # a full disk must not stop the pool: the log still says it
                log.warning("waiting_note_failed", error=str(exc))

    def gate(self) -> str | None:
        """Pool gate: why nothing new is claimed on this machine now, or None."""
        return self.refresh().reason

    def stop_local(self) -> str | None:
        """Under a strict policy that now says no: why local transcriptions stop at their next chunk."""
        state = self.refresh()
        return state.reason if self.rules.policy.strict and state.kind == "power" else None

    def local_limit(self, task_type: TaskType, limit: int) -> int:
        """A CPU-bound type's slot limit, lowered while the machine is hot."""
        self.refresh()
        return thermal.local_slots(self.level, limit)

    def note_memory(self, reason: str | None) -> None:
        """The memory gate holds local transcription back (reason) or not (None): shown with the rest."""
        if reason != self._memory:
            self._memory = reason
            self._publish(self._decide())

    def close(self) -> None:
        """The daemon stops: its note goes (a note of a dead pid is ignored anyway)."""
        self._publish(Waiting())


def machine_gate(settings: Settings) -> MachineGate:
    """The gate of the settings: run_on, active_hours, and the power and heat sources (folders when set)."""
    rules = Rules(parse_run_on(settings.run_on), parse_window(settings.active_hours) if settings.active_hours else None)
    supply = Path(settings.power_supply).expanduser() if settings.power_supply else None
    zones = Path(settings.thermal_dir).expanduser() if settings.thermal_dir else None
    return MachineGate(rules, partial(read_power, supply), partial(thermal.read_thermal, zones), settings.home)
