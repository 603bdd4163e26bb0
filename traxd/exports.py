"""Pure: the export formats (DOCX, Markdown, CSV/TSV, JSON Lines) made from a NAME.json document; the formats option.

NAME.json is always written: every other format is made from it, when the set is written and later by `traxctl export`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from traxd.errors import UsageError
from traxd.quality import segment_confidence

FORMATS = ("txt", "json", "srt", "vtt", "docx", "md", "csv", "tsv", "jsonl")
DEFAULT_FORMATS = ("txt", "json", "srt", "vtt")
# Without speakers a turn is a paragraph: a new one after a pause this long, or once one has run this long.
PAUSE_SECONDS = 2.0
PARAGRAPH_SECONDS = 60.0
TAGS = ("transcript",)
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters a DOCX (XML) cannot hold
_MD_START = re.compile(r"^(?=[#>*+\-=|`~])")  # a line start Markdown would read as syntax


def parse_formats(raw: str | Iterable[Any] | None) -> tuple[str, ...]:
    """The chosen formats from "txt,srt,docx" or a list, json always among them, in FORMATS order (UsageError)."""
    if raw is None:
        return DEFAULT_FORMATS
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = {str(item).strip().lower().lstrip(".") for item in items} - {""}
    unknown = sorted(names - set(FORMATS))
    if unknown:
        raise UsageError(f"unknown format {unknown[0]!r} (known: {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in names or f == "json")


@dataclass(frozen=True)
class Turn:
    """Consecutive segments of one speaker (without speakers: a paragraph), from its first start to its last end."""

    start: float
    end: float
    speaker: str | None
    text: str


def clock(seconds: float) -> str:
    """hh:mm:ss (whole seconds, rounded down: a turn's time is where to seek to hear it from its start)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _clean(text: Any) -> str:
    return " ".join(str(text or "").split())


def turns(doc: dict[str, Any]) -> list[Turn]:
    """The document's turns: a speaker's consecutive segments, or without speakers paragraphs split at pauses."""
    segments = [s for s in doc.get("segments") or [] if isinstance(s, dict) and _clean(s.get("text"))]
    if not segments:
        text = _clean(doc.get("text"))
        return [Turn(0.0, float(doc.get("duration") or 0.0), None, text)] if text else []
    diarized = any(s.get("speaker") for s in segments)
    out: list[Turn] = []
    for seg in segments:
        start, end, who = float(seg.get("start") or 0.0), float(seg.get("end") or 0.0), seg.get("speaker")
        who = str(who) if who else None
        last = out[-1] if out else None
        same = last is not None and (last.speaker == who if diarized else _same_paragraph(last, start))
        if last is not None and same:
            out[-1] = Turn(last.start, max(last.end, end), who, f"{last.text} {_clean(seg['text'])}")
        else:
            out.append(Turn(start, end, who, _clean(seg["text"])))
    return out


def _same_paragraph(last: Turn, start: float) -> bool:
    return start - last.end < PAUSE_SECONDS and last.end - last.start < PARAGRAPH_SECONDS


def talk_times(doc: dict[str, Any]) -> list[tuple[str, float]]:
    """Each speaker's talk time: the diarizer's own measure when NAME.json lists it, else summed from the segments."""
    listed = [e for e in doc.get("speakers") or [] if isinstance(e, dict) and e.get("speaker")]
    if listed:
        return [(str(e["speaker"]), float(e.get("talk_time") or 0.0)) for e in listed]
    summed: dict[str, float] = {}
    for seg in doc.get("segments") or []:
        if isinstance(seg, dict) and seg.get("speaker"):
            span = max(0.0, float(seg.get("end") or 0.0) - float(seg.get("start") or 0.0))
            summed[str(seg["speaker"])] = summed.get(str(seg["speaker"]), 0.0) + span
    return sorted(summed.items(), key=lambda item: -item[1])


def _title(doc: dict[str, Any]) -> str:
    return _clean(doc.get("name")) or "Transcript"


def _date(doc: dict[str, Any]) -> str | None:
    """The day the transcript was made (YYYY-MM-DD), when NAME.json says."""
    found = re.match(r"\d{4}-\d{2}-\d{2}", str(doc.get("created_at") or ""))
    return found.group(0) if found else None


def to_docx(doc: dict[str, Any]) -> bytes:
    """A Word document: title, date, duration, speakers with talk time, one paragraph per turn (speaker in bold)."""
    from docx import Document  # here: python-docx (and lxml) load only when a DOCX is made

    out = Document()
    out.core_properties.title = _xml(_title(doc))
    out.add_heading(_xml(_title(doc)), level=1)
    facts = [("Date", _date(doc)), ("Duration", clock(float(doc.get("duration") or 0.0))),
             ("Language", doc.get("language")), ("Source", doc.get("source"))]  # fmt: skip
    for label, value in facts:
        if value:
            out.add_paragraph(f"{label}: {_xml(str(value))}")
    talk = talk_times(doc)
    if talk:
        out.add_heading("Speakers", level=2)
        for name, seconds in talk:
            item = out.add_paragraph(style="List Bullet")
            item.add_run(_xml(name)).bold = True
            item.add_run(f" ({clock(seconds)})")
    out.add_heading("Transcript", level=2)
    for turn in turns(doc):
        para = out.add_paragraph()
        para.add_run(f"[{clock(turn.start)}] ")
        if turn.speaker:
            para.add_run(_xml(turn.speaker)).bold = True
            para.add_run(": ")
        para.add_run(_xml(turn.text))
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def to_markdown(doc: dict[str, Any]) -> str:
    """Markdown with YAML front matter (source, date, duration, language, speakers, tags); a section per turn."""
    talk = talk_times(doc)
    lines = ["---", f"title: {_yaml(_title(doc))}", f"source: {_yaml(str(doc.get('source') or ''))}"]
    if _date(doc):
        lines.append(f"date: {_date(doc)}")
    lines += [f"duration: {_yaml(clock(float(doc.get('duration') or 0.0)))}",
              f"language: {_yaml(doc.get('language'))}", *_yaml_list("speakers", [n for n, _ in talk]),
              *_yaml_list("tags", list(TAGS)), "---", "", f"# {_md(_title(doc))}", ""]  # fmt: skip
    for turn in turns(doc):
        who = f" {_md(turn.speaker)}" if turn.speaker else ""
        lines += [f"## [{clock(turn.start)}]{who}", "", _md(turn.text), ""]
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    """A YAML scalar: a JSON string is a YAML double-quoted one (YAML 1.2 reads JSON); null for nothing."""
    return "null" if value is None else json.dumps(str(value), ensure_ascii=False)


def _yaml_list(key: str, items: list[str]) -> list[str]:
    return [f"{key}:", *(f"  - {_yaml(item)}" for item in items)] if items else [f"{key}: []"]


def _md(text: str) -> str:
    """One line of text that Markdown shows as it is (no heading, list or quote made by what was said)."""
    return _MD_START.sub("\\\\", text.replace("\n", " "))


def to_table(doc: dict[str, Any], delimiter: str = ",") -> str:
    """CSV (or TSV): a header, then one row per segment: start, end (seconds), speaker, text, confidence."""
    buffer = io.StringIO()
    # A byte-order mark: spreadsheet programs take a file without one for the local code page, not UTF-8.
    buffer.write("\ufeff")
    writer = csv.writer(buffer, dialect="excel-tab" if delimiter == "\t" else "excel")
    writer.writerow(["start", "end", "speaker", "text", "confidence"])
    for seg in doc.get("segments") or []:
        if isinstance(seg, dict):
            conf = segment_confidence(seg)
            start, end = float(seg.get("start") or 0.0), float(seg.get("end") or 0.0)
            writer.writerow([f"{start:.3f}", f"{end:.3f}", seg.get("speaker") or "", _clean(seg.get("text")),
                             "" if conf is None else conf])  # fmt: skip
    return buffer.getvalue()


def to_jsonl(doc: dict[str, Any]) -> str:
    """JSON Lines: one segment a line, as NAME.json holds it, with its speaker (null without) and confidence."""
    rows = [{**seg, "speaker": seg.get("speaker"), "confidence": segment_confidence(seg)}
            for seg in doc.get("segments") or [] if isinstance(seg, dict)]  # fmt: skip
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# The formats made here; txt, json, srt and vtt are traxd.outputs' own.
WRITERS: dict[str, Callable[[dict[str, Any]], str | bytes]] = {
    "docx": to_docx, "md": to_markdown, "csv": to_table, "tsv": lambda doc: to_table(doc, "\t"), "jsonl": to_jsonl,
}

__all__ = ["DEFAULT_FORMATS", "FORMATS", "WRITERS", "Turn", "clock", "parse_formats", "talk_times", "turns"]
