"""The login service: a launchd agent (macOS) or a systemd --user unit (Linux), written and loaded."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from traxd.config import Settings
from traxd.errors import UserError
from traxd.outputs import write_text_atomic

LABEL = "com.trax.traxd"
UNIT_NAME = "traxd.service"
EXTRA_PATH = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
STOP_MARGIN = 15
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real command runner (launchctl, systemctl)."""
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class Plan:
    """What an install or uninstall writes (or removes) and runs."""

    kind: str
    path: Path
    content: str | None
    commands: list[list[str]] = field(default_factory=list)
    tolerate: frozenset[int] = frozenset()
    after: list[list[str]] = field(default_factory=list)


def service_kind(platform: str | None = None) -> str:
    """`launchd` on macOS, `systemd` elsewhere."""
    return "launchd" if (platform or sys.platform) == "darwin" else "systemd"


def default_dir(kind: str) -> Path:
    """~/Library/LaunchAgents or ~/.config/systemd/user."""
    if kind == "launchd":
        return Path.home() / "Library" / "LaunchAgents"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def program_arguments() -> list[str]:
    """Absolute command line of `traxd run`: the console script next to this Python, else `python -m`."""
    script = Path(sys.executable).parent / "traxd"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "run"]
    return [sys.executable, "-m", "traxd.cli.traxd_cmd", "run"]


def search_path() -> str:
    """PATH for the service: this Python's bin folder, Homebrew, then the system folders."""
    return ":".join(dict.fromkeys([str(Path(sys.executable).parent), *EXTRA_PATH]))


def template_path() -> Path:
    """launchd/com.trax.traxd.plist at the top of the checkout (or packaged next to traxd)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "launchd", here / "_launchd"):
        if (candidate / f"{LABEL}.plist").is_file():
            return candidate / f"{LABEL}.plist"
    raise UserError("the launchd template com.trax.traxd.plist is missing from this installation")


def render_plist(settings: Settings, program: Sequence[str]) -> str:
    """Fill the template: absolute program, home, log paths, PATH and ExitTimeOut > grace; no secrets."""
    data = plistlib.loads(template_path().read_bytes())
    home = str(settings.home)
    data["ProgramArguments"] = list(program)
    data["ExitTimeOut"] = int(settings.grace_seconds) + STOP_MARGIN
    data["WorkingDirectory"] = home
    data["StandardOutPath"] = str(settings.logs_dir / "launchd.out.log")
    data["StandardErrorPath"] = str(settings.logs_dir / "launchd.err.log")
    data["EnvironmentVariables"] = {"PATH": search_path(), "TRAX_HOME": home, "PYTHONUNBUFFERED": "1"}
    # Unset, launchd throttles an agent's CPU and I/O (gitlab-runner #29089: 36:42 against 5:48 with Interactive).
    data["ProcessType"] = settings.process_type
    data["LowPriorityIO"] = settings.process_type == "Background"
    return _no_secrets(settings, plistlib.dumps(data, sort_keys=False).decode("utf-8"))


def render_unit(settings: Settings, program: Sequence[str]) -> str:
    """A systemd --user unit: restart on failure (rate-limited), stop timeout > grace, mixed kill, umask 077."""
    exec_start = " ".join(_quote(a) for a in program)
    stop = int(settings.grace_seconds) + STOP_MARGIN
    text = f"""[Unit]
Description=Trax transcription daemon (traxd)
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=exec
ExecStart={exec_start}
WorkingDirectory={_quote(str(settings.home))}
Environment={_quote("TRAX_HOME=" + str(settings.home))}
Environment={_quote("PATH=" + search_path())}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=10
TimeoutStopSec={stop}
KillMode=mixed
UMask=0077
{_priority(settings.process_type)}
[Install]
WantedBy=default.target
"""
    return _no_secrets(settings, text)


def _priority(process_type: str) -> str:
    """systemd's counterpart of launchd's Background: the lowest CPU and I/O priority (others: the defaults)."""
    return "Nice=10\nIOSchedulingClass=idle\n" if process_type == "Background" else ""


def _quote(value: str) -> str:
    return f'"{value}"' if any(c in value for c in " \t\"'\\") else value


def _no_secrets(settings: Settings, text: str) -> str:
    for value in settings.secrets:
        if value and value in text:
            raise UserError("refusing to write a service file that contains an API key")
    return text


def plan_install(settings: Settings, kind: str, target_dir: Path, uid: int) -> Plan:
    """The file to write and the commands that load it."""
    program = program_arguments()
    if kind == "launchd":
        path = target_dir / f"{LABEL}.plist"
        cmds = [["launchctl", "bootout", f"gui/{uid}/{LABEL}"], ["launchctl", "bootstrap", f"gui/{uid}", str(path)],
                ["launchctl", "enable", f"gui/{uid}/{LABEL}"]]  # fmt: skip
        return Plan(kind, path, render_plist(settings, program), cmds, tolerate=frozenset({0}))
    path = target_dir / UNIT_NAME
    cmds = [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", UNIT_NAME]]
    return Plan(kind, path, render_unit(settings, program), cmds)


def plan_uninstall(kind: str, target_dir: Path, uid: int) -> Plan:
    """The commands that unload the service, and the file to remove."""
    if kind == "launchd":
        path = target_dir / f"{LABEL}.plist"
        return Plan(kind, path, None, [["launchctl", "bootout", f"gui/{uid}/{LABEL}"]], tolerate=frozenset({0}))
    path = target_dir / UNIT_NAME
    cmds = [["systemctl", "--user", "disable", "--now", UNIT_NAME]]
    return Plan(kind, path, None, cmds, frozenset({0}), after=[["systemctl", "--user", "daemon-reload"]])


def status_command(kind: str, uid: int) -> list[str]:
    """The command that shows the service's state."""
    if kind == "launchd":
        return ["launchctl", "print", f"gui/{uid}/{LABEL}"]
    return ["systemctl", "--user", "status", "--no-pager", UNIT_NAME]


def apply_install(plan: Plan, runner: Runner) -> list[str]:
    """Write the file (0644, atomically) and run the load commands; returns their output lines."""
    write_text_atomic(plan.path, plan.content or "")
    return _run_all(plan.kind, plan.commands, plan.tolerate, runner)


def apply_uninstall(plan: Plan, runner: Runner) -> list[str]:
    """Unload the service, then remove its file."""
    if not plan.path.exists():
        raise UserError(f"no service is installed ({plan.path} does not exist)")
    out = _run_all(plan.kind, plan.commands, plan.tolerate, runner)
    plan.path.unlink(missing_ok=True)
    return out + _run_all(plan.kind, plan.after, frozenset(), runner)


def _run_all(kind: str, commands: list[list[str]], tolerate: frozenset[int], runner: Runner) -> list[str]:
    out = []
    for index, cmd in enumerate(commands):
        if shutil.which(cmd[0]) is None and runner is run_command:
            raise UserError(f"{cmd[0]} not found: the {kind} service cannot be loaded on this system")
        done = runner(cmd)
        out.append(f"$ {' '.join(cmd)} -> {done.returncode}")
        # Unloading something that is not loaded is fine (first command of a re-install, or uninstall).
        if done.returncode != 0 and index not in tolerate:
            detail = (done.stderr or done.stdout or "").strip().splitlines()
            raise UserError(f"`{' '.join(cmd)}` failed: {detail[-1] if detail else done.returncode}")
    return out
