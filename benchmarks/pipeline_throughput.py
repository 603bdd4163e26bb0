"""Pipeline benchmark: API throughput against the ideal, preprocess speed against FFmpeg alone, peak RSS on 2 hours.

    uv run python benchmarks/pipeline_throughput.py [--files 200] [--latency 0.5] [--workers 8] [--hours 2]

1. `--files` short generated files go through the real pool, handlers and SQLite queue (PREPROCESS -> TRANSCRIBE)
   against the fake OpenAI server with `--latency` seconds per request and `--workers` API slots (PREPROCESS gets
   its own CPU-bound slots, one per core, as the daemon configures it). Ideal = requests / workers x latency.
2. Preprocess speed (x realtime) of a 10-minute input against running the same FFmpeg conversion by hand.
3. Peak RSS (the Python process, the FFmpeg child, and both together) while preprocessing a generated `--hours`
   input, in a fresh process as a daemon's would be (run in this one, it counted what parts 1-2 left behind).
4. The cost of syncing each paid result: a TRANSCRIBE checkpoint stored with `paid=True` (WAL synced at COMMIT)
   against the same checkpoint without it, interleaved, on a SQLite file in the temporary folder (put it on the
   disk you mean with TMPDIR); the difference is what each paid request pays extra.
Goals: within 1.15x of the ideal; preprocess within 1.2x of FFmpeg alone; peak RSS under 150 MB; the extra sync
per paid request well under 1% of a `--latency` API call.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI, Recorded, default_transcription
from traxd.adapters import ffmpeg
from traxd.config import load_settings
from traxd.daemon.paid import PaidResults
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.daemon.spool import Spool
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers import default_registry, default_type_limits
from traxd.handlers.registry import Cancellation
from traxd.queue.store import Store
from traxd.types import NewJob, NewTask, TaskState, TaskType


def fixed_transcription(req: Recorded) -> dict:
    """A fixed 2-second transcript (the server's work is its latency)."""
    req.headers["x-fake-duration"] = "2"
    return default_transcription(req)


def serve(latency: float, conn: Connection) -> None:
    """The fake server in its own process (its CPU is not Trax's): send the URL, then the request count on 'stop'."""
    with FakeOpenAI(latency=latency, transcribe=fixed_transcription) as server:
        conn.send(server.base_url)
        conn.recv()
        calls = server.calls("/audio/transcriptions")
        conn.send([c.at for c in calls])


def queue_files(store: Store, root: Path, files: int) -> None:
    """Copies of a 2-second clip, queued the way ingestion queues files."""
    inbox = root / "in"
    inbox.mkdir()
    seed = media.tone(inbox / "seed.wav", 2.0).read_bytes()
    for i in range(files):
        path = inbox / f"clip-{i:03d}.wav"
        path.write_bytes(seed)
        first = NewTask(TaskType.PREPROCESS, {"path": str(path)}, dedupe_key=f"file:{i}")
        store.create_job(NewJob(str(path), path.stem, str(root / "out"), "bench"), [first])


def queue_transcriptions(store: Store, root: Path, files: int) -> None:
    """TRANSCRIBE tasks whose chunk is already made: the API stage alone, without FFmpeg's CPU."""
    (root / "in").mkdir()
    src = media.tone(root / "in" / "seed.wav", 2.0)
    prepared = ffmpeg.preprocess(src, root / "in" / "chunks", 600.0)
    chunks = [{"path": c.path, "offset": c.offset, "duration": c.duration} for c in prepared.chunks]
    for i in range(files):
        payload = {"path": str(src), "duration": prepared.duration, "chunks": chunks}
        first = NewTask(TaskType.TRANSCRIBE, payload, dedupe_key=f"chunks:{i}")
        store.create_job(NewJob(f"{src}#{i}", f"clip-{i:03d}", str(root / "out"), "bench"), [first])


def throughput(root: Path, files: int, latency: float, workers: int, api_only: bool = False) -> None:
    """Part 1: short files through pool + queue + fake server (api_only: TRANSCRIBE tasks of ready chunks)."""
    mine, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(latency, theirs), daemon=True)
    server.start()
    base_url = mine.recv()
    (root / "home").mkdir(parents=True)
    settings = load_settings({"home": root / "home", "openai_api_key": "sk-bench", "openai_base_url": base_url}, env={})
    store = Store(open_engine(settings.database_url))
    upgrade(store.engine)
    (queue_transcriptions if api_only else queue_files)(store, root, files)
    limits = {**default_type_limits(settings), TaskType.TRANSCRIBE: workers}
    config = PoolConfig(slots=workers + limits[TaskType.PREPROCESS], lease_seconds=60.0, type_limits=limits,
                        settings=settings)  # fmt: skip
    spent: list[float] = []
    pool = Pool(store, default_registry(settings), config,
                PoolWiring(on_outcome=lambda o, _took: spent.append(o.seconds) if o.task.type is TaskType.TRANSCRIBE else None))  # fmt: skip
    import traxd.adapters.transcribe_openai  # noqa: F401 - a daemon pays this import once at start, not per file

    cpu_before, load_before = _cpu_seconds(), os.getloadavg()[0]
    started, t0 = time.monotonic(), time.time()
    pool.run(drain=True)
    wall = time.monotonic() - started
    cpu, load = _cpu_seconds() - cpu_before, os.getloadavg()[0]
    mine.send("stop")
    stamps = mine.recv()
    server.join()
    done = store.counts()[TaskState.SUCCEEDED.value]
    ideal = len(stamps) / workers * latency
    print(f"throughput ({'TRANSCRIBE stage only' if api_only else 'PREPROCESS + TRANSCRIBE'}): {files} files, {len(stamps)} requests, {done} tasks succeeded, {workers} API slots + "
          f"{limits[TaskType.PREPROCESS]} preprocess slots, latency {latency}s")  # fmt: skip
    print(f"  wall {wall:.2f}s  ideal {ideal:.2f}s  ratio {wall / ideal:.3f}  (goal <= 1.15); requests from "
          f"{min(stamps) - t0:.2f}s to {max(stamps) - t0:.2f}s")  # fmt: skip
    print(f"  CPU used by trax + FFmpeg {cpu:.1f}s over {wall:.1f}s wall on {os.cpu_count()} cores; "
          f"load average {load_before:.1f} -> {load:.1f}; TRANSCRIBE handler mean {sum(spent) / len(spent):.3f}s")  # fmt: skip


def _cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def preprocess_speed(root: Path, minutes: float) -> None:
    """Part 2: our preprocess against the same FFmpeg conversion run by hand (wall and CPU, best of 3, interleaved)."""
    src = root / "speech.mp3"
    media.ffmpeg("-f", "lavfi", "-i", f"sine=f=220:d={minutes * 60}", "-f", "lavfi", "-i",
                 f"anoisesrc=d={minutes * 60}:a=0.05", "-filter_complex", "amix=inputs=2", "-ac", "2", "-ar", "44100",
                 str(src))  # fmt: skip
    seconds = minutes * 60
    argv = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *ffmpeg.convert_args(src, root / "hand.ogg")]
    runs = [(_measure(lambda: subprocess.run(argv, check=True, capture_output=True)),
             _measure(lambda: ffmpeg.preprocess(src, root / "chunks", 600.0))) for _ in range(3)]  # fmt: skip
    hand_wall, hand_cpu = min(r[0][0] for r in runs), min(r[0][1] for r in runs)
    our_wall, our_cpu = min(r[1][0] for r in runs), min(r[1][1] for r in runs)
    print(f"preprocess: {minutes:.0f} min input; the same FFmpeg command by hand {hand_wall:.2f}s "
          f"({seconds / hand_wall:.0f}x realtime, {hand_cpu:.2f} CPU-s); trax preprocess {our_wall:.2f}s "
          f"({seconds / our_wall:.0f}x realtime, {our_cpu:.2f} CPU-s); ratio wall {our_wall / hand_wall:.3f}, "
          f"CPU {our_cpu / hand_cpu:.3f} (goal <= 1.2)")  # fmt: skip


def _measure(fn: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of one call."""
    before, started = _cpu_seconds(), time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started, _cpu_seconds() - before


def peak_rss(root: Path, hours: float) -> None:
    """Part 3: sample RSS of this process and its FFmpeg children while a long input is preprocessed."""
    src = root / "long.wav"
    media.ffmpeg("-f", "lavfi", "-i", f"sine=f=220:d={hours * 3600}:r=16000", "-ac", "1", str(src))
    me = psutil.Process()
    peaks = {"self": 0, "child": 0, "total": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            own = me.memory_info().rss
            kids = sum(_rss(c) for c in me.children(recursive=True))
            peaks.update(self=max(peaks["self"], own), child=max(peaks["child"], kids), total=max(peaks["total"], own + kids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    prepared = ffmpeg.preprocess(src, root / "long-chunks", 600.0)
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    mb = {k: v / 1e6 for k, v in peaks.items()}
    print(f"peak RSS: {hours:.1f} h input ({src.stat().st_size / 1e6:.0f} MB WAV) -> {len(prepared.chunks)} chunks in "
          f"{wall:.1f}s; python {mb['self']:.1f} MB, ffmpeg {mb['child']:.1f} MB, together {mb['total']:.1f} MB "
          f"(goal < 150 MB)")  # fmt: skip


def _rss(proc: psutil.Process) -> int:
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def paid_sync_cost(root: Path, rounds: int, latency: float) -> None:
    """Part 4: a paid (synced) checkpoint against a plain one, interleaved, with a 20-chunk TRANSCRIBE state."""
    store = Store(open_engine(f"sqlite:///{root / 'trax.db'}"))
    upgrade(store.engine)
    store.enqueue(NewTask(TaskType.TRANSCRIBE, {}))
    (run,) = store.claim("bench", 1, 3600)
    chunk = default_transcription(Recorded("/v1/audio/transcriptions", {"x-fake-duration": "600"}, {}, "c.ogg"))
    state = {"plan": [[600.0 * i, 600.0] for i in range(20)], "done": {str(i): chunk for i in range(20)}}
    for _ in range(300):  # a running daemon's WAL has reached its size and is rewritten in place: start there
        store.checkpoint(run.lease, state)
    blob = json.dumps(state).encode()
    fd = os.open(root / "raw.bin", os.O_CREAT | os.O_WRONLY, 0o600)
    # "daemon": the pool's own path for a paid result (PaidResults: spooled only if the commit fails, so never here).
    paid = PaidResults(store, Spool(root / "spool"), 10.0, random.Random(0))
    times: dict[str, list[float]] = {"plain": [], "paid": [], "daemon": [], "disk": []}
    for i in range(rounds):
        kinds = ["plain", "paid", "daemon", "disk"] if i % 2 else ["plain", "daemon", "paid", "disk"]
        for kind in kinds:  # paid and daemon swap places each round: each follows a sync as often as the other
            spent = times[kind]
            started = time.perf_counter()
            if kind == "disk":  # the disk's own price: write the same bytes and fdatasync them
                os.pwrite(fd, blob, (i % 50) * len(blob))
                os.fdatasync(fd)
            elif kind == "daemon":
                assert paid.commit(run.lease, TaskType.TRANSCRIBE.value, state, Cancellation())
            else:
                assert store.checkpoint(run.lease, state, paid=kind == "paid")
            spent.append(time.perf_counter() - started)
    os.close(fd)
    assert not (root / "spool").exists(), "the normal path wrote the spool"
    plain, synced, daemon, disk = (sorted(times[k])[rounds // 2] * 1000 for k in ("plain", "paid", "daemon", "disk"))
    extra = synced - plain
    print(f"paid sync: {rounds} checkpoints each way ({len(blob) / 1000:.0f} kB state); median plain {plain:.2f} ms, "
          f"paid (WAL synced) {synced:.2f} ms; extra per paid request {extra:.2f} ms = "
          f"{extra / (latency * 1000):.2%} of a {latency}s API call (goal < 1%); this disk's own write + fdatasync "
          f"of the same bytes {disk:.2f} ms; the daemon's spool-backed path {daemon:.2f} ms "
          f"({daemon - synced:+.2f} ms against the paid commit alone; no spool file written)")  # fmt: skip
    store.engine.dispose()


def main() -> None:
    """Run the three parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the preprocess-speed input")
    parser.add_argument("--hours", type=float, default=2.0, help="length of the peak-RSS input")
    parser.add_argument("--rounds", type=int, default=200, help="paid and plain checkpoints timed for part 4")
    parser.add_argument("--only", choices=("throughput", "preprocess", "rss", "paid-sync"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trax-bench-") as tmp:
        root = Path(tmp)
        if args.only in (None, "throughput"):
            throughput(root / "t", args.files, args.latency, args.workers)
            throughput(root / "a", args.files, args.latency, args.workers, api_only=True)
        if args.only in (None, "preprocess"):
            (root / "p").mkdir()
            preprocess_speed(root / "p", args.minutes)
        if args.only == "rss":
            (root / "r").mkdir()
            peak_rss(root / "r", args.hours)
        elif args.only is None:  # in a fresh process: this one holds the pools, servers and threads of parts 1-2
            subprocess.run([sys.executable, __file__, "--only", "rss", "--hours", str(args.hours)], check=True)
        if args.only in (None, "paid-sync"):
            (root / "s").mkdir()
            paid_sync_cost(root / "s", args.rounds, args.latency)


if __name__ == "__main__":
    main()
