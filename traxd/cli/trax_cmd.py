"""`trax batch` lives here (helper "batch" owns this module; this stub only keeps the console script importable)."""

from __future__ import annotations

import sys


def main() -> None:
    """Placeholder until `trax batch` lands."""
    sys.stderr.write("error: `trax batch` is not part of this build yet\n")
    raise SystemExit(1)
