"""Batch transcription with the programmatic API, in the original design's async style.

Run:  uv run python examples/batch_example.py FOLDER
Only the import line differs from the original design; tasks live in Trax's durable queue, so running the
script again after an interruption continues where it stopped and skips files already transcribed.
"""

import asyncio
import sys
from pathlib import Path

from traxd import create_batch_processor, TaskType

MEDIA = {".mp3", ".wav", ".m4a", ".flac", ".ogg", ".mp4", ".mov", ".mkv", ".webm"}


def on_progress(progress):
    print(
        f"Progress: {progress.completed_tasks}/{progress.total_tasks} "
        f"({progress.success_rate:.1f}% success) | Failed: {progress.failed_tasks} | "
        f"Memory: {progress.memory_usage_mb:.1f}MB | CPU: {progress.cpu_usage_percent:.1f}%"
    )


async def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "media")
    processor = create_batch_processor(
        max_workers=8,
        queue_size=1000,
        progress_interval=5.0,
        memory_limit_mb=2048,
        cpu_limit_percent=90,
    )

    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in MEDIA:
            await processor.add_task(TaskType.TRANSCRIBE, {"file_path": str(path)}, priority=0)

    result = await processor.start(progress_callback=on_progress)

    print(f"Total: {result.total_count}")
    print(f"Successful: {result.success_count}")
    print(f"Failed: {result.failure_count}")
    print(f"Success rate: {result.success_rate:.1f}%")
    print(f"Processing time: {result.processing_time:.2f}s")
    print(f"Peak memory: {result.memory_peak_mb:.1f}MB")
    if result.quality_metrics.get("average_confidence") is not None:
        print(f"Average confidence: {result.quality_metrics['average_confidence']:.2f}")
    for failure in result.failures:
        print(f"FAILED {failure['source']}: {failure['reason']}")
    return 0 if result.failure_count == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
