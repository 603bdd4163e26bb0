"""Picking up a paid stage where a previous attempt left it (ENHANCE, TRANSLATE, SUMMARIZE).

Each of those stages checkpoints the chunks it paid for under a signature of its input. A retry keeps them only
when the signature still matches: the same text cut the same way, so no answer is reused for other input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def resume_state(previous: Mapping[str, Any], basis: str, done_key: str, carry: tuple[str, ...] = ()) -> dict[str, Any]:
    """The state to continue from: `previous[done_key]` (the paid chunks) and the `carry` values it holds, when
    `previous` was made from the same `basis`; else a fresh state. Its signature is the SHA-256 of `basis`."""
    signature = hashlib.sha256(basis.encode()).hexdigest()
    state: dict[str, Any] = {"signature": signature, done_key: {}}
    if previous.get("signature") != signature:
        return state
    done = previous.get(done_key)
    state[done_key] = dict(done) if isinstance(done, dict) else {}
    state.update({key: previous[key] for key in carry if previous.get(key)})
    return state
