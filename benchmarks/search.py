"""Search archive: index 10,000 transcripts (~200,000 segments), then time word, phrase and prefix queries.

Run: uv run python benchmarks/search.py [--transcripts 10000] [--segments 20] [--queries 200]
     uv run python benchmarks/search.py --db postgresql+psycopg://USER@HOST:PORT/DB   (a fresh database is made)

Transcripts are generated (fixed seed): words drawn from a Zipf-like distribution over a 20,000-word vocabulary,
8-16 words a segment, every tenth one with an accent. Each transcript is indexed the way a finished TRANSCRIBE
task is (one transaction). Queries go through `traxd.archive.search` (parse, SQL, snippets), limit 20, and mix
frequent and rare words. Prints indexing time and index size per 1,000 transcripts and query p50/p95 in ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pgdb import fresh_pg_database
from traxd import archive
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store

SYLLABLES = ["ka", "lo", "mi", "ter", "son", "bu", "dge", "ra", "ne", "vel", "pro", "ject", "an", "de", "ti", "ma"]
ACCENTED = {"a": "á", "e": "é", "o": "ô"}


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """Distinct pseudo-words of 2-4 syllables (shared prefixes, like real words)."""
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def segments(rng: random.Random, vocab: list[str], weights: list[float], n: int) -> list[dict]:
    out, at = [], 0.0
    for _ in range(n):
        text = " ".join(rng.choices(vocab, weights, k=rng.randint(8, 16)))
        if rng.random() < 0.1:
            text = "".join(ACCENTED.get(c, c) if rng.random() < 0.2 else c for c in text)
        length = rng.uniform(2.0, 8.0)
        out.append({"start": round(at, 2), "end": round(at + length, 2), "text": text.capitalize() + ".",
                    "speaker": rng.choice(["A", "B", None])})  # fmt: skip
        at += length
    return out


def index_all(store: Store | None, n: int, per: int, seed: int) -> tuple[float, list[list[dict]]]:
    """Index n transcripts one transaction each; returns seconds per 1,000 and a sample of segments for queries."""
    rng = random.Random(seed)
    vocab = vocabulary(rng, 20_000)
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(vocab))]
    sample: list[list[dict]] = []
    t0 = time.perf_counter()
    for i in range(n):
        segs = segments(rng, vocab, weights, per)
        entry = {"json_path": f"/out/talk-{i}.json", "name": f"talk-{i}", "source": f"/in/talk-{i}.mp3",
                 "language": "en", "duration": segs[-1]["end"], "segments": segs}  # fmt: skip
        if store is not None:
            store.index_transcript(entry)
        if i % 50 == 0:
            sample.append(segs)
        if store is not None and (i + 1) % 2000 == 0:
            print(f"  indexed {i + 1}/{n} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return (time.perf_counter() - t0) / n * 1000, sample


def queries(sample: list[list[dict]], n: int, seed: int) -> dict[str, list[str]]:
    """Queries taken from indexed text (so they match): `word` picks a word as often as it is said (mostly very
    common ones), `any-word` picks among the distinct words evenly (what a person searches for), two-word phrases,
    and three-letter prefixes."""
    rng = random.Random(seed + 1)
    distinct = sorted({w for segs in sample for seg in segs for w in seg["text"].rstrip(".").lower().split()})
    words_, phrases, prefixes = [], [], []
    rare = [rng.choice(distinct) for _ in range(n)]
    for _ in range(n):
        seg = rng.choice(rng.choice(sample))
        tokens = seg["text"].rstrip(".").lower().split()
        words_.append(rng.choice(tokens))
        i = rng.randrange(len(tokens) - 1)
        phrases.append(f'"{tokens[i]} {tokens[i + 1]}"')
        prefixes.append(rng.choice(tokens)[:3] + "*")
    return {"word": words_, "any-word": rare, "phrase": phrases, "prefix": prefixes}


def time_queries(store: Store, qs: list[str]) -> tuple[float, float, float]:
    """p50 and p95 latency in ms, and the mean number of hits."""
    times, hits = [], []
    for q in qs:
        t0 = time.perf_counter()
        found = archive.search(q, store=store, limit=20)
        times.append((time.perf_counter() - t0) * 1000)
        hits.append(len(found))
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], statistics.mean(hits)


def size_mb(store: Store, path: Path | None) -> float:
    """Bytes the archive takes: the SQLite file growth, or the PostgreSQL relations with their indexes."""
    if path is not None:
        wal = path.with_name(path.name + "-wal")
        return (path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6
    with store.engine.connect() as conn:
        total = conn.exec_driver_sql(
            "SELECT pg_total_relation_size('transcripts') + pg_total_relation_size('transcript_segments')").scalar()
    return float(total or 0) / 1e6


def run(url: str, path: Path | None, args: argparse.Namespace) -> None:
    engine = open_engine(url)
    upgrade(engine)
    store = Store(engine)
    base = size_mb(store, path)
    if store.archive_counts()[0] >= args.transcripts:  # --keep: already indexed, time the queries again
        _, sample = index_all(None, args.transcripts, args.segments, args.seed)
    else:
        print(f"{engine.dialect.name}: indexing {args.transcripts} transcripts x {args.segments} segments", flush=True)
        per_1000, sample = index_all(store, args.transcripts, args.segments, args.seed)
        size = size_mb(store, path) - base
        t, s = store.archive_counts()
        print(f"indexed {t} transcripts, {s} segments: {per_1000:.2f} s per 1,000 transcripts; "
              f"index size {size:.1f} MB ({size / t * 1000:.1f} MB per 1,000 transcripts)")  # fmt: skip
    for kind, qs in queries(sample, args.queries, args.seed).items():
        archive.search(qs[0], store=store)  # warm the caches once
        p50, p95, mean_hits = time_queries(store, qs)
        print(f"  {kind:8s} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   ({len(qs)} queries, {mean_hits:.1f} hits each)")
    engine.dispose()


def _kept_pg_database(admin_url: str, name: str) -> str:
    """The URL of database `name` on the admin URL's server, created if missing (kept afterwards)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--db", help="a PostgreSQL URL allowed to CREATE DATABASE (default: a SQLite file)")
    parser.add_argument("--keep", type=Path, help="index into this SQLite file (with --db: this database name) and "
                        "keep it; a second run reuses it and only times the queries")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.db and args.keep:
        run(_kept_pg_database(args.db, str(args.keep)), None, args)
        return
    if args.db:
        with fresh_pg_database(args.db, "trax_bench") as url:
            run(url, None, args)
        return
    if args.keep:
        run(f"sqlite:///{args.keep.resolve()}", args.keep.resolve(), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.db"
        run(f"sqlite:///{path}", path, args)


if __name__ == "__main__":
    main()
