"""The job options' command-line flags, declared once for `traxctl add`, `trax batch` and `traxctl watch add`.

One spelling, one help text and one range check each; what a flag not given means is traxd.joboptions' rule
(the setting when the job is queued). Flags are None when not given, so the settings decide.
"""

from __future__ import annotations

from typing import Annotated

import typer

Enhance = Annotated[bool, typer.Option("--enhance", help="Also clean up the transcript (DeepSeek): NAME.enhanced.txt.")]
TranslateTo = Annotated[str | None, typer.Option(
    "--translate-to", metavar="CODE[,CODE]",
    help="Also translate (DeepSeek; en without a key: Whisper, local backend): NAME.CODE.txt/.srt/.vtt.")]
Summarize = Annotated[bool | None, typer.Option(
    "--summarize/--no-summarize", show_default=False, help="Write NAME.summary.md (DeepSeek), or not.")]
Model = Annotated[str | None, typer.Option(
    metavar="MODEL", help="An API model, or a local size or folder (default: the configured model).")]
Language = Annotated[str | None, typer.Option(metavar="CODE", help="Spoken language, ISO-639-1 (e.g. en).")]
ChunkSize = Annotated[float | None, typer.Option(metavar="SECONDS", help="Chunk length (default 600).")]
WordTimestamps = Annotated[bool, typer.Option("--word-timestamps", help="Timed words in NAME.json.")]
Diarize = Annotated[bool, typer.Option("--diarize", help="Label who speaks (the `diarize` extra).")]
Speakers = Annotated[int | None, typer.Option(min=1, metavar="N", help="How many people speak, when known.")]
MinSpeakers = Annotated[int | None, typer.Option(min=1, metavar="N", help="At least this many speakers.")]
MaxSpeakers = Annotated[int | None, typer.Option(min=1, metavar="N", help="At most this many speakers.")]
Formats = Annotated[str | None, typer.Option(
    metavar="FMT[,FMT]",
    help="Outputs besides NAME.json: txt, srt, vtt, docx, md, csv, tsv, jsonl (default txt,srt,vtt).")]
Vocabulary = Annotated[str | None, typer.Option(
    metavar="TERMS|@FILE",
    help="Names and rare words to spell right, comma-separated or one a line in FILE (read when queued).")]
At = Annotated[str | None, typer.Option(
    "--at", metavar="HH:MM|DATE", help="Start no earlier than this: the next 02:00 local time, or a date-time.")]
NotBefore = Annotated[str | None, typer.Option(
    "--not-before", metavar="ISO-TIME", help="Start no earlier than this date-time (local unless it has a zone).")]
After = Annotated[list[int] | None, typer.Option(
    "--after", metavar="JOB", min=1, help="Start once this job has succeeded (repeatable).")]


def start_time(at: str | None, not_before: str | None, now: float) -> float | None:
    """The epoch seconds of `--at` or `--not-before` (one of them at most), None when neither is given."""
    from traxd.errors import UsageError
    from traxd.typedtime import parse_start

    if at is not None and not_before is not None:
        raise UsageError("give --at or --not-before, not both")
    if at is None and not_before is None:
        return None
    return parse_start(at or not_before or "", now, "--at" if at is not None else "--not-before")
