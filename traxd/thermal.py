"""Thermal pressure where the OS reports it, as one level, and how many local slots that level leaves.

Linux: /sys/class/thermal/thermal_zone*/temp against the zone's own passive/hot/critical trip points (active
trips only start fans). macOS: `pmset -g therm`, whose CPU_Speed_Limit / CPU_Scheduler_Limit fall below 100 while
the machine throttles. TRAX_THERMAL_DIR points the Linux reader at another folder of that shape (tests, odd
machines). Anything unreadable is nominal: heat only ever lowers the slots, it never stops work.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from traxd.power import read_number, read_value

SYSFS = Path("/sys/class/thermal")
NOMINAL, FAIR, SERIOUS, CRITICAL = 0, 1, 2, 3
NAMES = ("nominal", "fair", "serious", "critical")
FAIR_MARGIN_MC = 5000  # within 5 °C of a passive trip the machine is warm, not yet throttling


def local_slots(level: int, limit: int) -> int:
    """Pure: local slots under this pressure: all up to fair, half when serious, one when critical."""
    if level >= CRITICAL:
        return min(limit, 1)
    if level >= SERIOUS:
        return max(1, limit // 2) if limit > 0 else limit
    return limit


def read_thermal(source: Path | None = None) -> int:
    """The pressure level now: from a thermal-zone folder when given (or on Linux), else from pmset on macOS."""
    if source is not None:
        return zones_level(source)
    if sys.platform.startswith("linux"):
        return zones_level(SYSFS)
    if sys.platform == "darwin":
        return pmset_level(_pmset())
    return NOMINAL


def zones_level(folder: Path) -> int:
    """The highest level of any zone: its temperature against its own trip points (millidegrees)."""
    levels = [_zone_level(z) for z in sorted(folder.glob("thermal_zone*"))]
    return max(levels, default=NOMINAL)


def _zone_level(zone: Path) -> int:
    temp = _millideg(zone / "temp")
    if temp is None:
        return NOMINAL
    trips: dict[str, int] = {}
    for trip in zone.glob("trip_point_*_type"):
        kind = _text(trip)
        value = _millideg(trip.with_name(trip.name.replace("_type", "_temp")))
        if kind and value and value > 0:
            trips[kind] = min(value, trips.get(kind, value))
    if "critical" in trips and temp >= trips["critical"]:
        return CRITICAL
    soft = min((trips[k] for k in ("passive", "hot") if k in trips), default=None)
    if soft is None:
        return NOMINAL
    return SERIOUS if temp >= soft else FAIR if temp >= soft - FAIR_MARGIN_MC else NOMINAL


def pmset_level(output: str) -> int:
    """Pure: the level `pmset -g therm` output tells: CPU limits of 100 are nominal, lower ones throttling."""
    limits = [int(m) for m in re.findall(r"CPU_(?:Speed|Scheduler)_Limit\s*=\s*(\d+)", output)]
    lowest = min(limits, default=100)
    if lowest >= 100:
        return NOMINAL
    return FAIR if lowest >= 80 else SERIOUS if lowest >= 50 else CRITICAL


def _pmset() -> str:
    try:
        done = subprocess.run(["pmset", "-g", "therm"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _text(path: Path) -> str | None:
    text = read_value(path)
    return text.lower() if text else None


def _millideg(path: Path) -> int | None:
    value = read_number(path)
    return int(value) if value is not None else None
