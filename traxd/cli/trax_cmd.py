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
from traxd.cli.help_format import PLAIN_HELP
from traxd.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Trax one-shot commands.", **PLAIN_HELP)


@app.callback()
def _root() -> None:
    """Trax: transcribe folders of audio and video."""


@app.command()
def batch(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Folder of media files (or one file).")],
    workers: Annotated[int | None, typer.Option(metavar="N", help="Tasks run at once (default 8).")] = None,
    progress_interval: Annotated[float, typer.Option(metavar="SECONDS", help="Between progress reports.")] = 5.0,
    memory_limit: Annotated[float | None, typer.Option(
        metavar="MB", help="Stop claiming above this much memory (default 2048).")] = None,
    cpu_limit: Annotated[float | None, typer.Option(
        metavar="PERCENT", help="Stop claiming above this CPU use, % of the machine (default 90).")] = None,
    model: opt.Model = None,
    language: opt.Language = None,
    chunk_size: opt.ChunkSize = None,
    enhance: opt.Enhance = False,
    translate_to: opt.TranslateTo = None,
    summarize: opt.Summarize = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Include subfolders.")] = True,
    output: Annotated[Path | None, typer.Option(metavar="DIR", help="Output folder (default: PATH/transcripts).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    word_timestamps: opt.WordTimestamps = False,
    diarize: opt.Diarize = False,
    speakers: opt.Speakers = None,
    min_speakers: opt.MinSpeakers = None,
    max_speakers: opt.MaxSpeakers = None,
    vocabulary: opt.Vocabulary = None,
    formats: opt.Formats = None,
) -> None:
    """Transcribe a folder in the foreground; Ctrl-C and a re-run continue where it stopped."""
    opts = BatchOptions(path, workers, progress_interval, memory_limit, cpu_limit, model, language, chunk_size,
                        enhance, recursive, output, word_timestamps, diarize=diarize, speakers=speakers,
                        min_speakers=min_speakers, max_speakers=max_speakers, translate_to=translate_to,
                        summarize=summarize, vocabulary=vocabulary, formats=formats)  # fmt: skip
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
