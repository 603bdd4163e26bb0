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
