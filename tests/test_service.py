"""The launchd agent and systemd unit: rendered into a temp folder, validated, loaded through a fake runner."""

from __future__ import annotations

import configparser
import plistlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from traxd.cli.traxctl_cmd import app
from traxd.config import load_settings
from traxd.daemon import unit
from traxd.errors import UserError

KEY = "sk-service-secret-abcdef123456"


class FakeRunner:
    """Records commands instead of running launchctl/systemctl."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail or {}

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        code = next((c for word, c in self.fail.items() if word in args), 0)
        return subprocess.CompletedProcess(list(args), code, "", "boom: not allowed" if code else "")


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"TRAX_HOME": str(tmp_path / "home"), "OPENAI_API_KEY": KEY, "DEEPSEEK_API_KEY": KEY + "ds",
           "TRAX_GRACE_SECONDS": "25"}  # fmt: skip
    return load_settings(env=env)


def test_plist_is_valid_and_complete(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = FakeRunner()
    plan = unit.plan_install(settings, "launchd", tmp_path / "LaunchAgents", uid=501)
    unit.apply_install(plan, runner)
    raw = (tmp_path / "LaunchAgents" / "com.trax.traxd.plist").read_bytes()
    data = plistlib.loads(raw)
    assert data["Label"] == "com.trax.traxd"
    assert Path(data["ProgramArguments"][0]).is_absolute() and data["ProgramArguments"][-1] == "run"
    assert data["RunAtLoad"] is True and data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["ThrottleInterval"] >= 10
    assert data["ExitTimeOut"] > settings.grace_seconds
    assert data["Umask"] == 63
    assert data["StandardOutPath"].startswith(str(settings.home / "logs"))
    assert data["StandardErrorPath"].startswith(str(settings.home / "logs"))
    env = data["EnvironmentVariables"]
    assert "/opt/homebrew/bin" in env["PATH"].split(":") and env["TRAX_HOME"] == str(settings.home)
    assert KEY.encode() not in raw and b"API_KEY" not in raw
    assert runner.calls == [["launchctl", "bootout", "gui/501/com.trax.traxd"],
                            ["launchctl", "bootstrap", "gui/501", str(plan.path)],
                            ["launchctl", "enable", "gui/501/com.trax.traxd"]]  # fmt: skip


def test_systemd_unit_keys(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = FakeRunner()
    plan = unit.plan_install(settings, "systemd", tmp_path / "user", uid=1000)
    unit.apply_install(plan, runner)
    text = plan.path.read_text()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    service = parser["Service"]
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) >= 5
    assert int(service["TimeoutStopSec"]) > settings.grace_seconds
    assert service["KillMode"] == "mixed" and service["UMask"] == "0077"
    assert service["ExecStart"].split()[-1] == "run" and Path(service["ExecStart"].split()[0].strip('"')).is_absolute()
    assert "StartLimitBurst" in parser["Unit"] and "StartLimitIntervalSec" in parser["Unit"]
    assert parser["Install"]["WantedBy"] == "default.target"
    assert KEY not in text and "API_KEY" not in text
    assert runner.calls[-1] == ["systemctl", "--user", "enable", "--now", "traxd.service"]


def test_uninstall_unloads_then_removes(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for kind in ("launchd", "systemd"):
        target = tmp_path / kind
        unit.apply_install(unit.plan_install(settings, kind, target, uid=7), FakeRunner())
        runner = FakeRunner(fail={"bootout": 3, "disable": 5})  # not loaded: tolerated
        plan = unit.plan_uninstall(kind, target, uid=7)
        unit.apply_uninstall(plan, runner)
        assert not plan.path.exists()
        with pytest.raises(UserError, match="no service is installed"):
            unit.apply_uninstall(plan, runner)


def test_a_failing_load_is_one_clear_error(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = unit.plan_install(settings, "launchd", tmp_path, uid=7)
    with pytest.raises(UserError, match="launchctl bootstrap .* failed: boom"):
        unit.apply_install(plan, FakeRunner(fail={"bootstrap": 5}))


def test_secret_in_the_home_path_is_refused(tmp_path: Path) -> None:
    s = load_settings(env={"TRAX_HOME": str(tmp_path / "sk-leaky-key-000000"), "OPENAI_API_KEY": "sk-leaky-key-000000"})
    with pytest.raises(UserError, match="API key"):
        unit.render_unit(s, ["/bin/traxd", "run"])


def test_cli_dry_run_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(unit, "default_dir", lambda kind: tmp_path / "agents" / kind)
    calls: list[list[str]] = []
    monkeypatch.setattr(unit, "run_command", lambda args: calls.append(list(args)))
    cli = CliRunner()
    result = cli.invoke(app, ["service", "install", "--dry-run"])
    assert result.exit_code == 0 and "# would write" in result.output and KEY not in result.output
    assert "# would run:" in result.output
    assert cli.invoke(app, ["service", "uninstall", "--dry-run"]).exit_code == 0
    status = cli.invoke(app, ["service", "status", "--dry-run"])
    assert status.exit_code == 0 and "not installed" in status.output
    assert calls == [] and not (tmp_path / "agents").exists()


def test_program_arguments_are_absolute() -> None:
    args = unit.program_arguments()
    assert Path(args[0]).is_absolute() and args[-1] == "run"
