"""`trax`: one-shot commands (`trax batch FOLDER`). Thin: parsing here, the work in traxd.batching."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from traxd.batching.command import EXIT_USAGE, BatchOptions, run_batch
from traxd.cli import job_options as opt
from traxd.cli.batch_view import LiveReporter, PlainReporter
from traxd.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Trax one-shot commands.")


@app.callback()
def _root() -> None:
    """Trax: transcribe folders of audio and video."""


@app.command()
def batch(
    path: Annotated[Path, typer.Argument(help="Folder of media files (or one file).", show_default=False)],
    workers: Annotated[int | None, typer.Option(help="Parallel tasks.", show_default="8")] = None,
    progress_interval: Annotated[float, typer.Option(help="Seconds between progress reports.")] = 5.0,
    memory_limit: Annotated[float | None, typer.Option(help="Stop claiming above this RSS (MB).", show_default="2048")] = None,
    cpu_limit: Annotated[float | None, typer.Option(help="Stop claiming above this CPU (% of the machine).", show_default="90")] = None,
    model: Annotated[str | None, typer.Option(help="Transcription model.", show_default="whisper-1")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language, ISO-639-1 (e.g. en).")] = None,
    chunk_size: Annotated[float | None, typer.Option(help="Chunk length in seconds.", show_default="600")] = None,
    enhance: opt.Enhance = False,
    translate_to: opt.TranslateTo = None,
    summarize: opt.Summarize = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Include subfolders.")] = True,
    output: Annotated[Path | None, typer.Option(help="Output folder.", show_default="PATH/transcripts")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    word_timestamps: opt.WordTimestamps = False,
    diarize: opt.Diarize = False,
    speakers: opt.Speakers = None,
    min_speakers: opt.MinSpeakers = None,
    max_speakers: opt.MaxSpeakers = None,
) -> None:
    """Transcribe a folder in the foreground; Ctrl-C and a re-run continue where it stopped."""
    opts = BatchOptions(path, workers, progress_interval, memory_limit, cpu_limit, model, language, chunk_size,
                        enhance, recursive, output, word_timestamps, diarize=diarize, speakers=speakers,
                        min_speakers=min_speakers, max_speakers=max_speakers, translate_to=translate_to,
                        summarize=summarize)  # fmt: skip
    out, err = Console(file=sys.stdout), Console(file=sys.stderr)
    reporter = (LiveReporter if err.is_terminal else PlainReporter)(out, err, as_json)
    try:
        code = run_batch(opts, reporter)
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)


def main() -> None:
    """Console script entry point."""
    app()
