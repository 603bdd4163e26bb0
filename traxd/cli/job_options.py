"""The per-job options `trax batch` and `traxctl add` share: one spelling, one help text, one range check."""

from __future__ import annotations

from typing import Annotated

import typer

TranslateTo = Annotated[str | None, typer.Option(
    "--translate-to", metavar="CODE[,CODE]",
    help="Also translate (DeepSeek; en without a key: Whisper, local backend): NAME.CODE.txt/.srt/.vtt.")]
Summarize = Annotated[bool, typer.Option("--summarize", help="Also write NAME.summary.md (DeepSeek).")]
WordTimestamps = Annotated[bool, typer.Option("--word-timestamps", help="Timed words in NAME.json.")]
Diarize = Annotated[bool, typer.Option("--diarize", help="Label who speaks (the `diarize` extra).")]
Speakers = Annotated[int | None, typer.Option(min=1, help="How many people speak, when known.")]
MinSpeakers = Annotated[int | None, typer.Option(min=1, help="At least this many speakers.")]
MaxSpeakers = Annotated[int | None, typer.Option(min=1, help="At most this many speakers.")]
