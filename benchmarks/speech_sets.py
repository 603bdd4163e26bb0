"""Speech files with known text, in two sets of different voices: settings are tuned on one set, judged on the other.

    uv run python benchmarks/speech_sets.py OUT_DIR [tune|judge|both]   # writes the WAVs and texts.json

Tune set: espeak-ng (en-us, male variants), Festival's kal diphone voice (a recorded US man) and the alsa-utils
human recordings of the front/rear channel names. Judge set: espeak-ng (en-gb, female variant; en-us+klatt),
Festival's ked diphone voice and the HTS voice built from the CMU Arctic recordings of a US woman (slt), and the
alsa-utils side channels. Passages differ between the sets too, so nothing chosen on one set's words is rewarded
on the other's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ALSA = Path("/usr/share/sounds/alsa")
CHANNELS = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right", "Side_Left",
            "Side_Right"]  # fmt: skip
PASSAGES = {
    "river": "The river runs through the old town and under seven stone bridges. In the spring the water rises "
    "and the market moves to the upper square. Boats carry fruit, wood and letters from the villages in the hills. "
    "Children count the boats from the bridges and wave to the people on board. In the evening the lamps are lit "
    "along the water, and the whole town walks slowly by the river before dinner. The bridges were built four "
    "hundred years ago by the families who lived on both sides, and every family still paints its own stone.",
    "kitchen": "To make bread you need flour, water, salt and yeast. Mix the flour and the salt in a large bowl. "
    "Warm the water until it feels like your hand and stir in the yeast. Pour the water into the flour and mix "
    "until the dough comes together. Knead it on the table for ten minutes, until it is smooth and springs back "
    "when you press it. Leave it in the bowl under a cloth for an hour. Shape it into a loaf, let it rise again, "
    "and bake it in a hot oven for forty minutes. The bread is done when it sounds hollow as you knock on it.",
    "station": "The morning train to the coast leaves from platform four at eight fifteen. Passengers with "
    "bicycles should use the last carriage, where there is room for six bicycles and a few large bags. The "
    "journey takes three hours and stops at every town along the valley. Tickets can be bought on the train, but "
    "they cost more than at the station. In the summer the train is often full, so arrive early and find a seat "
    "by the window on the left side. From there you can see the lakes, the forests and finally the sea.",
    "garden": "Our garden is small but it gives us vegetables from May until October. We grow beans, peas, "
    "tomatoes, potatoes and a few rows of lettuce. Every morning someone waters the plants before the sun is "
    "high. The birds like the berries more than we do, so we cover the bushes with a green net. In the autumn we "
    "dig the beds, add compost and plant garlic for the next year. The work is never finished, but a warm tomato "
    "eaten in the garden is worth every hour we spend there.",
}
JUDGE_PASSAGES = {
    "library": "The library opens at nine and closes at six, except on Sundays. On the ground floor there are "
    "newspapers, magazines and a corner for children with low shelves and soft chairs. The reading room upstairs "
    "is quiet, and people sit there for hours with their books and notes. If you want to borrow a book, bring a "
    "card with your name and address. You may keep it for three weeks and renew it twice by telephone. Books that "
    "come back late cost a small fine, which goes to buy new books for the school next door.",
    "weather": "Tomorrow will start cold and grey, with fog in the valleys until the middle of the morning. By "
    "noon the sun should break through in the west, and the afternoon will be bright and dry. Temperatures will "
    "reach twelve degrees in the cities and a little less on the hills. In the evening the wind will turn to the "
    "north and bring colder air, so expect frost on the roads after midnight. The weekend looks wet, with heavy "
    "rain on Saturday and showers on Sunday, clearing slowly from the south.",
    "market": "Every Thursday the farmers bring their produce to the square in front of the church. There are "
    "apples and pears from the orchards, cheese from the farms in the mountains, fresh eggs, honey and bread. "
    "The fish seller arrives before dawn and is usually gone by ten. Most stalls take cards now, but the old "
    "woman who sells flowers still wants cash. Come early for the best choice, or come late when the prices "
    "fall and the farmers would rather sell than carry their goods home again.",
    "workshop": "In the workshop behind the house my grandfather repaired clocks for more than fifty years. The "
    "walls were covered with tools, each hanging in its own outline so he could see at once what was missing. "
    "He worked by a window that faced north, because the light there never changed during the day. He taught me "
    "to open a watch without scratching it, to clean every wheel, and to listen for the moment the spring "
    "catches. I still keep his small screwdriver in my desk, though I have never fixed a clock myself.",
}
# (file stem, synthesiser, voice, passages)
TUNE = [("tune-espeak-us-m3", "espeak", "en-us+m3", ["river", "kitchen", "station"]),
        ("tune-espeak-us-m7", "espeak", "en-us+m7", ["garden", "river", "kitchen"]),
        ("tune-festival-kal", "festival", "voice_kal_diphone", ["station", "garden", "river"])]  # fmt: skip
JUDGE = [("judge-espeak-gb-f2", "espeak", "en-gb+f2", ["library", "weather", "market"]),
         ("judge-festival-slt", "festival", "voice_cmu_us_slt_arctic_hts", ["workshop", "library", "weather"]),
         ("judge-festival-ked", "festival", "voice_ked_diphone", ["market", "workshop", "library"])]  # fmt: skip
ALSA_FILES = {"tune": ("tune-alsa-front-rear", CHANNELS[:6]), "judge": ("judge-alsa-sides", CHANNELS[6:] + CHANNELS[:2])}


def missing_tools() -> list[str]:
    """The programs these files need that are not installed."""
    return [t for t in ("espeak-ng", "sox", "text2wave") if shutil.which(t) is None] + (
        [] if ALSA.is_dir() else ["alsa-utils"])  # fmt: skip


def say(engine: str, voice: str, text: str, out: Path) -> None:
    """One passage spoken into a 16 kHz mono WAV file (each synthesiser has its own rate)."""
    raw = out.with_suffix(".raw.wav")
    if engine == "espeak":
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    else:
        subprocess.run(["text2wave", "-eval", f"({voice})", "-o", str(raw)], input=text, text=True, check=True,
                       capture_output=True)  # fmt: skip
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out)], check=True)
    raw.unlink()


def joined(parts: list[Path], out: Path, gap: Path) -> None:
    """WAV files joined with a short pause between them, at 16 kHz mono (sox)."""
    args: list[str] = []
    for part in parts:
        args += [str(part), str(gap)]
    subprocess.run(["sox", *args[:-1], "-r", "16000", "-c", "1", str(out)], check=True)


def make_set(folder: Path, which: str) -> dict[str, str]:
    """The files of one set in `folder`; their known texts by stem."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".parts"
    scratch.mkdir(exist_ok=True)
    gap = scratch / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(gap), "trim", "0", "0.7"], check=True)
    texts: dict[str, str] = {}
    table = {**PASSAGES, **JUDGE_PASSAGES}
    for stem, engine, voice, names in TUNE if which == "tune" else JUDGE:
        parts = []
        for name in names:
            parts.append(scratch / f"{stem}-{name}.wav")
            say(engine, voice, table[name], parts[-1])
        joined(parts, folder / f"{stem}.wav", gap)
        texts[stem] = " ".join(table[n] for n in names)
    stem, channels = ALSA_FILES[which]
    subprocess.run(["sox", *[str(ALSA / f"{c}.wav") for c in channels], "-r", "16000", "-c", "1",
                    str(folder / f"{stem}.wav")], check=True)  # fmt: skip
    texts[stem] = ". ".join(ch.replace("_", " ") for ch in channels) + "."
    shutil.rmtree(scratch)
    return texts


def five_minutes(folder: Path) -> tuple[Path, str]:
    """One ~5-minute file of several voices (the original design's "5-minute audio" goal); its text."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".parts5"
    scratch.mkdir(exist_ok=True)
    gap = scratch / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(gap), "trim", "0", "0.7"], check=True)
    table = {**PASSAGES, **JUDGE_PASSAGES}
    voices = [("espeak", "en-gb+f2"), ("festival", "voice_cmu_us_slt_arctic_hts"), ("festival", "voice_ked_diphone"),
              ("espeak", "en-us+m3")]  # fmt: skip
    parts, words = [], []
    for i, name in enumerate(list(JUDGE_PASSAGES) * 2 + list(PASSAGES)[:2]):
        engine, voice = voices[i % len(voices)]
        parts.append(scratch / f"{i}.wav")
        say(engine, voice, table[name], parts[-1])
        words.append(table[name])
    out = folder / "five-minutes.wav"
    joined(parts, out, gap)
    shutil.rmtree(scratch)
    return out, " ".join(words)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation (jiwer)."""
    import jiwer

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    return float(jiwer.wer(reference, hypothesis, reference_transform=norm, hypothesis_transform=norm))


def pooled_wer(texts: dict[str, str], got: dict[str, str]) -> float:
    """One word error rate over every file of a set (jiwer pools the edits of all pairs)."""
    import jiwer

    stems = sorted(texts)
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    return float(jiwer.wer([texts[s] for s in stems], [got.get(s, "") or "-" for s in stems],
                           reference_transform=norm, hypothesis_transform=norm))  # fmt: skip


def seconds_of(path: Path) -> float:
    """A WAV file's length (soxi)."""
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    sets = ["tune", "judge"] if len(sys.argv) < 3 or sys.argv[2] == "both" else [sys.argv[2]]
    all_texts = {}
    for name in sets:
        all_texts.update(make_set(out_dir / name, name))
    (out_dir / "texts.json").write_text(json.dumps(all_texts, indent=1))
    print(f"{len(all_texts)} files in {out_dir}")
