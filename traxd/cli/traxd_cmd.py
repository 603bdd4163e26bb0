"""`traxd run`: the daemon in the foreground (launchd and systemd run this)."""

from __future__ import annotations

from typing import Annotated

import typer

from traxd.cli.common import one_line_errors
from traxd.cli.help_format import PLAIN_HELP

app = typer.Typer(
    help="traxd: the Trax daemon. Watches inbox folders and runs the transcription queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    **PLAIN_HELP,
)


@app.callback()
def _root() -> None:
    """traxd: the Trax daemon."""


@app.command()
@one_line_errors
def run(
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1, metavar="N",
                                                help="Tasks run at once (default 8).")] = None,
    drain: Annotated[bool, typer.Option("--drain", help="Process until nothing is runnable, then exit 0.")] = False,
    dashboard: Annotated[bool, typer.Option("--dashboard",
                                            help="Also serve the dashboard (see traxctl dashboard).")] = False,
    dashboard_host: Annotated[str, typer.Option(metavar="HOST", help="The dashboard's address (beyond loopback: a token).")] = "127.0.0.1",
    dashboard_port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="The dashboard's port.")] = 8765,
    serve: Annotated[str | None, typer.Option(
        "--serve", metavar="[HOST:]PORT", is_flag=False, flag_value="127.0.0.1:8766",
        help="Also serve OpenAI's transcription API under /v1 (alone: 127.0.0.1:8766; beyond loopback: a token)."),
    ] = None,
) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT or `traxctl stop` (exit 0)."""
    from traxd.daemon.service import main_thread_exit, run_daemon

    served = {"host": dashboard_host, "port": dashboard_port} if dashboard else None
    code = run_daemon({"workers": workers, "serve": serve}, drain=drain, dashboard=served)
    main_thread_exit(code)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
