"""The machine's power source and the run policy that reads it (`run_on`): may this machine start work now?

One reader, its source a parameter: a folder shaped like Linux's /sys/class/power_supply (`AC/online`,
`BAT0/status`, `BAT0/capacity`; TRAX_POWER_SUPPLY points at another one), else psutil's `sensors_battery`.
External power is the charger's `online` flag, not the battery's status: a full battery on the charger reports
"Full" or "Not charging", never "Charging" (Syncthing-Android #979 never started work on one).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys/class/power_supply")
POLICIES = ("always", "ac", "battery-above")
MAINS_TYPES = ("mains", "usb", "usb_c", "usb_pd", "wireless")  # supplies whose `online` means external power


@dataclass(frozen=True)
class Power:
    """One reading: on external power or not, and the battery's charge (None without a battery)."""

    external: bool
    percent: float | None = None

    def describe(self) -> str:
        """"on battery (42%)", "on external power", or "no battery"."""
        if self.external:
            return "on external power" if self.percent is not None else "no battery"
        return "on battery" + (f" ({self.percent:.0f}%)" if self.percent is not None else "")


@dataclass(frozen=True)
class RunPolicy:
    """`always`, `ac` or `battery-above:N`; `strict` stops local work at its next chunk when the policy says no."""

    mode: str = "always"
    threshold: float = 0.0
    strict: bool = False

    def __str__(self) -> str:
        base = f"battery-above:{self.threshold:g}" if self.mode == "battery-above" else self.mode
        return base + (",strict" if self.strict else "")


def parse_run_on(text: str) -> RunPolicy:
    """`ac`, `ac,strict`, `battery-above:30`, `battery-above:30,strict`, `always` (ValueError otherwise)."""
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    strict = "strict" in parts[1:]
    if not parts or parts[1:] not in ([], ["strict"]):
        raise ValueError(f"run_on {text!r}: one of always, ac, battery-above:N, optionally followed by ,strict")
    mode, _, number = parts[0].partition(":")
    if mode not in POLICIES or (mode == "battery-above") != bool(number):
        raise ValueError(f"run_on {text!r}: one of always, ac, battery-above:N (N a percentage)")
    threshold = float(number.rstrip("%")) if number else 0.0
    if not 0.0 <= threshold < 100.0:
        raise ValueError(f"run_on {text!r}: N must be a percentage from 0 to 99")
    return RunPolicy(mode, threshold, strict and mode != "always")


def refusal(policy: RunPolicy, power: Power) -> str | None:
    """Pure: why the policy forbids starting work on this power, or None when it allows it."""
    if policy.mode == "always" or power.external:
        return None
    if policy.mode == "battery-above" and power.percent is not None and power.percent > policy.threshold:
        return None
    return f"{power.describe()}, policy {policy}"


def read_power(source: Path | None = None) -> Power:
    """The power now: from a power-supply folder when given (or on Linux), else from psutil."""
    if source is not None:
        return read_supply_folder(source)
    if sys.platform.startswith("linux"):
        return read_supply_folder(SYSFS) if SYSFS.is_dir() else Power(True)
    return read_psutil()


def read_psutil() -> Power:
    """psutil.sensors_battery(): no battery (or no answer) is external power; an unknown plug state too."""
    import psutil

    try:
        battery = psutil.sensors_battery()
    except (OSError, RuntimeError, NotImplementedError):
        return Power(True)
    if battery is None:
        return Power(True)
    return Power(battery.power_plugged is not False, float(battery.percent))


def read_supply_folder(folder: Path) -> Power:
    """Every supply under `folder`: any charger online = external; the system batteries' mean charge."""
    chargers: list[bool] = []
    batteries: list[tuple[float | None, str]] = []
    for supply in sorted(folder.iterdir()) if folder.is_dir() else []:
        kind = (read_value(supply / "type") or _kind_from_name(supply.name)).lower()
        if kind == "battery" and (read_value(supply / "scope") or "System").lower() != "device":  # not a mouse's
            batteries.append((read_number(supply / "capacity"), (read_value(supply / "status") or "").lower()))
        elif kind in MAINS_TYPES and (online := read_number(supply / "online")) is not None:
            chargers.append(online >= 1)
    if not batteries:
        return Power(True)
    charges = [c for c, _ in batteries if c is not None]
    percent = sum(charges) / len(charges) if charges else None
    if chargers:
        return Power(any(chargers), percent)
    # No charger is listed (some machines expose only the battery): anything but discharging is external power.
    return Power(all(status != "discharging" for _, status in batteries), percent)


def _kind_from_name(name: str) -> str:
    upper = name.upper()
    if upper.startswith("BAT"):
        return "battery"
    return "mains" if upper.startswith(("AC", "ADP", "ACAD", "MAINS")) else "unknown"


def read_value(path: Path) -> str | None:
    """A sysfs-style file's text, stripped; None when it is missing, unreadable or empty."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def read_number(path: Path) -> float | None:
    """A sysfs-style file's number; None when there is none."""
    text = read_value(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
