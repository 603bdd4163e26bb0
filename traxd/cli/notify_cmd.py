"""`traxctl notify test`: send a test event to every configured target and print what each answered."""

from __future__ import annotations

import time

import typer

from traxd.cli.common import one_line_errors, settings
from traxd.cli.help_format import PLAIN_HELP
from traxd.errors import TaskError, UserError

notify_app = typer.Typer(help="Notifications and webhooks told when a job ends.", no_args_is_help=True, **PLAIN_HELP)


@notify_app.command("test")
@one_line_errors
def notify_test() -> None:
    """Send a test event to every target; one line each with its answer (exit 1 if any failed)."""
    from traxd import notify
    from traxd.handlers.notify import deliver

    found = notify.targets(settings())
    if not found:
        raise UserError("no notification targets: set notify, webhooks or TRAX_WEBHOOK_URL (see the README)")
    failed = 0
    for target in found:
        try:
            answer = deliver(target, notify.test_event(time.time()))
        except TaskError as exc:
            failed += 1
            answer = f"failed ({exc.kind.value}): {str(exc).splitlines()[0]}"
        typer.echo(f"{target.label}: {answer}")
    if failed:
        raise typer.Exit(1)
