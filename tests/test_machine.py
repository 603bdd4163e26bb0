"""Issue 27, machine level: the power reader and run policy, quiet-hour windows, thermal levels, and the gate."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from traxd import thermal
from traxd.config import load_settings
from traxd.daemon.machine import MachineGate, Rules
from traxd.errors import ConfigError
from traxd.power import Power, RunPolicy, parse_run_on, read_supply_folder, refusal
from traxd.schedule import Window, closed_reason, is_open, next_open, parse_window
from traxd.types import TaskType
from traxd.waiting import WAITING_NOTE, Waiting, read_note


def supply(root: Path, name: str, **files: str) -> Path:
    """One power supply folder (AC, BAT0, …) with its files."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        (folder / key).write_text(value + "\n")
    return root


# -- power ------------------------------------------------------------------------------------
def test_on_battery_reads_the_charge_and_the_unplugged_charger(tmp_path: Path) -> None:
    supply(tmp_path, "AC", online="0")
    supply(tmp_path, "BAT0", status="Discharging", capacity="42")
    assert read_supply_folder(tmp_path) == Power(False, 42.0)


def test_a_full_battery_on_the_charger_is_external_power(tmp_path: Path) -> None:
    """Syncthing-Android #979: "Full" / "Not charging" is not "Charging", yet the charger is plugged in."""
    supply(tmp_path, "AC", online="1")
    supply(tmp_path, "BAT0", status="Not charging", capacity="100")
    assert read_supply_folder(tmp_path) == Power(True, 100.0)


def test_no_battery_is_external_power(tmp_path: Path) -> None:
    assert read_supply_folder(tmp_path / "missing") == Power(True)
    supply(tmp_path, "AC", online="0")  # a desktop with only a mains entry
    assert read_supply_folder(tmp_path).external


def test_supply_types_win_over_names_and_a_mouse_battery_is_not_the_machine(tmp_path: Path) -> None:
    supply(tmp_path, "ucsi-source-psy-USBC000:001", type="USB", online="1")
    supply(tmp_path, "macsmc-battery", type="Battery", status="Charging", capacity="55")
    supply(tmp_path, "hidpp_battery_0", type="Battery", scope="Device", status="Discharging", capacity="5")
    assert read_supply_folder(tmp_path) == Power(True, 55.0)


def test_without_a_charger_entry_the_battery_status_decides(tmp_path: Path) -> None:
    supply(tmp_path, "BAT1", status="Discharging", capacity="80")
    assert read_supply_folder(tmp_path) == Power(False, 80.0)
    supply(tmp_path, "BAT1", status="Full")
    assert read_supply_folder(tmp_path).external


@pytest.mark.parametrize(
    ("text", "policy"),
    [("always", RunPolicy()), ("ac", RunPolicy("ac")), (" AC , strict ", RunPolicy("ac", strict=True)),
     ("battery-above:30", RunPolicy("battery-above", 30.0)),
     ("battery-above:25%,strict", RunPolicy("battery-above", 25.0, True))],
)  # fmt: skip
def test_run_on_syntax(text: str, policy: RunPolicy) -> None:
    assert parse_run_on(text) == policy


@pytest.mark.parametrize("text", ["", "sometimes", "ac,loose", "battery-above", "battery-above:100", "ac:3", "ac,strict,strict"])
def test_run_on_rejects_what_it_cannot_mean(text: str) -> None:
    with pytest.raises(ValueError, match="run_on"):
        parse_run_on(text)


def test_a_bad_run_on_or_window_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_on"):
        load_settings(env={"TRAX_HOME": str(tmp_path), "TRAX_RUN_ON": "battery"})
    with pytest.raises(ConfigError, match="25:00"):
        load_settings(env={"TRAX_HOME": str(tmp_path), "TRAX_ACTIVE_HOURS": "25:00-07:00"})
    (tmp_path / "config.toml").write_text('run_on = "ac,strict"\n[[watch]]\ninbox = "in"\nactive_hours = "01:00-05:00"\n')
    settings = load_settings(env={"TRAX_HOME": str(tmp_path)})
    assert settings.run_on == "ac,strict" and settings.watch[0].active_hours == "01:00-05:00"


def test_the_policy_says_why_it_refuses() -> None:
    battery = Power(False, 42.0)
    assert refusal(RunPolicy(), battery) is None
    assert refusal(RunPolicy("ac"), battery) == "on battery (42%), policy ac"
    assert refusal(RunPolicy("ac"), Power(True, 42.0)) is None
    assert refusal(RunPolicy("battery-above", 40.0), battery) is None
    assert refusal(RunPolicy("battery-above", 50.0, True), battery) == "on battery (42%), policy battery-above:50,strict"
    assert refusal(RunPolicy("battery-above", 50.0), Power(False, None)) == "on battery, policy battery-above:50"


# -- quiet hours ------------------------------------------------------------------------------
def at(hour: int, minute: int = 0, day: int = 10) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute)


def test_a_window_across_midnight() -> None:
    night = parse_window("22:00-07:00")
    assert [is_open(night, at(h)) for h in (21, 22, 23, 0, 6)] == [False, True, True, True, True]
    assert not is_open(night, at(7)) and is_open(night, at(6, 59))
    day = parse_window("9:30-17:00")
    assert str(day) == "09:30-17:00" and not is_open(day, at(9, 29)) and is_open(day, at(9, 30))


@pytest.mark.parametrize("text", ["22-07", "22:00", "24:00-01:00", "10:00-10:00", "aa:bb-cc:dd"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


@pytest.fixture
def berlin() -> Iterator[None]:
    """Local time with daylight saving (Europe/Berlin: clocks go 02:00 -> 03:00 on 2026-03-29)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.usefixtures("berlin")
def test_next_open_is_wall_clock_time_across_a_daylight_saving_change() -> None:
    night = parse_window("22:00-07:00")
    inside = dt.datetime(2026, 3, 28, 23, 30).timestamp()
    assert next_open(night, inside) == inside
    noon_after_change = dt.datetime(2026, 3, 29, 12, 0).timestamp()
    opens = next_open(night, noon_after_change)
    assert dt.datetime.fromtimestamp(opens) == dt.datetime(2026, 3, 29, 22, 0)
    assert opens - noon_after_change == 10 * 3600  # ten hours, the clock's own
    morning = dt.datetime(2026, 3, 28, 8, 0).timestamp()  # before the change; opens the same evening
    assert dt.datetime.fromtimestamp(next_open(night, morning)) == dt.datetime(2026, 3, 28, 22, 0)
    late = dt.datetime(2026, 3, 28, 23, 59).timestamp()
    day = parse_window("01:00-02:00")
    assert dt.datetime.fromtimestamp(next_open(day, late)) == dt.datetime(2026, 3, 29, 1, 0)
    assert closed_reason(night, noon_after_change) == "outside active hours 22:00-07:00 (opens 22:00)"


# -- heat ------------------------------------------------------------------------------------
def zone(root: Path, name: str, temp: int, **trips: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "temp").write_text(f"{temp}\n")
    for i, (kind, value) in enumerate(trips.items()):
        (folder / f"trip_point_{i}_type").write_text(kind + "\n")
        (folder / f"trip_point_{i}_temp").write_text(f"{value}\n")
    return root


def test_thermal_zones_against_their_own_trip_points(tmp_path: Path) -> None:
    assert thermal.zones_level(tmp_path) == thermal.NOMINAL  # nothing readable: nominal
    zone(tmp_path, "thermal_zone0", 50000, active=45000, passive=90000, critical=105000)
    assert thermal.zones_level(tmp_path) == thermal.NOMINAL  # over a fan trip only
    zone(tmp_path, "thermal_zone1", 87000, passive=90000, critical=105000)
    assert thermal.zones_level(tmp_path) == thermal.FAIR
    zone(tmp_path, "thermal_zone1", 95000, passive=90000, critical=105000)
    assert thermal.zones_level(tmp_path) == thermal.SERIOUS
    zone(tmp_path, "thermal_zone0", 106000, critical=105000)
    assert thermal.zones_level(tmp_path) == thermal.CRITICAL


def test_pmset_cpu_limits_tell_the_pressure() -> None:
    calm = "Note: No thermal warning level has been recorded\nNote: No performance warning level has been recorded\n"
    assert thermal.pmset_level(calm) == thermal.NOMINAL
    hot = calm + "2020-11-24 13:10:40 +0100 CPU Power notify\n\tCPU_Scheduler_Limit \t= 100\n\tCPU_Speed_Limit \t= 35\n"
    assert thermal.pmset_level(hot) == thermal.CRITICAL
    assert thermal.pmset_level(hot.replace("= 35", "= 70")) == thermal.SERIOUS


def test_heat_lowers_local_slots_never_to_zero() -> None:
    assert [thermal.local_slots(level, 4) for level in range(4)] == [4, 4, 2, 1]
    assert thermal.local_slots(thermal.SERIOUS, 1) == 1


# -- the gate --------------------------------------------------------------------------------
def test_the_gate_reads_every_interval_and_notes_why_it_waits(tmp_path: Path) -> None:
    power = [Power(False, 42.0)]
    heat = [thermal.NOMINAL]
    gate = MachineGate(Rules(RunPolicy("ac", strict=True)), lambda: power[0], lambda: heat[0], tmp_path, interval=0.0)
    assert gate.gate() == "on battery (42%), policy ac,strict"
    assert gate.stop_local() == gate.gate()
    assert read_note(tmp_path) == Waiting("on battery (42%), policy ac,strict", "power")
    power[0], heat[0] = Power(True, 42.0), thermal.SERIOUS
    assert gate.gate() is None and gate.stop_local() is None
    assert gate.local_limit(TaskType.TRANSCRIBE, 4) == 2
    assert json.loads((tmp_path / WAITING_NOTE).read_text())["local_slots"] == "halved"
    assert read_note(tmp_path) == Waiting(None, None, "serious", "halved")
    gate.note_memory("waiting: predicted 2.1 GB (0.9 GB now + 1.2 GB) for job 12 does not fit the 2.0 GB limit")
    noted = read_note(tmp_path)
    assert noted is not None and noted.memory and "job 12" in noted.memory and noted.kinds() == {"thermal", "memory"}
    gate.note_memory(None)
    assert read_note(tmp_path) == Waiting(None, None, "serious", "halved")
    gate.close()
    assert not (tmp_path / WAITING_NOTE).exists()


def test_quiet_hours_close_the_gate_but_never_stop_running_work(tmp_path: Path) -> None:
    now = dt.datetime(2026, 3, 10, 12, 0).timestamp()
    hours = Window(22 * 60, 7 * 60)
    gate = MachineGate(Rules(RunPolicy("ac", strict=True), hours), lambda: Power(True), lambda: 0, now=lambda: now)
    assert gate.gate() == "outside active hours 22:00-07:00 (opens 22:00)"
    assert gate.stop_local() is None


# -- the login service ------------------------------------------------------------------------
def test_the_service_files_carry_the_chosen_process_type(tmp_path: Path) -> None:
    import plistlib

    from traxd.daemon import unit

    default = load_settings(env={"TRAX_HOME": str(tmp_path)})
    plist = plistlib.loads(unit.render_plist(default, ["/bin/traxd", "run"]).encode())
    assert plist["ProcessType"] == "Standard" and plist["LowPriorityIO"] is False
    assert "Nice=" not in unit.render_unit(default, ["/bin/traxd", "run"])
    quiet = load_settings({"process_type": "Background"}, env={"TRAX_HOME": str(tmp_path)})
    plist = plistlib.loads(unit.render_plist(quiet, ["/bin/traxd", "run"]).encode())
    assert plist["ProcessType"] == "Background" and plist["LowPriorityIO"] is True
    assert "Nice=10\nIOSchedulingClass=idle\n" in unit.render_unit(quiet, ["/bin/traxd", "run"])
    with pytest.raises(ConfigError, match="process_type"):
        load_settings(env={"TRAX_HOME": str(tmp_path), "TRAX_PROCESS_TYPE": "Fast"})


def test_status_prints_every_reason_the_machine_holds_work_back() -> None:
    from traxd.cli.status_cmd import _machine_lines

    held = Waiting("on battery (42%), policy ac", "power", "serious", "halved",
                   "waiting: predicted 2.1 GB (0.9 GB now + 1.2 GB) for job 12 does not fit the 2.0 GB limit")  # fmt: skip
    assert _machine_lines(held) == [
        "Waiting: on battery (42%), policy ac", "Thermal pressure serious: local slots halved",
        "Local transcription waiting: predicted 2.1 GB (0.9 GB now + 1.2 GB) for job 12 does not fit the 2.0 GB limit",
    ]  # fmt: skip
    assert _machine_lines(None) == [] and _machine_lines(Waiting()) == []
