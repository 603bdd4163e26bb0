"""resume_state: the paid chunks of a previous attempt are kept only for the same input."""

from __future__ import annotations

import hashlib

from traxd.handlers.resume import resume_state

SIG = hashlib.sha256(b"text").hexdigest()


def test_the_same_input_keeps_what_was_paid_for_and_the_carried_values() -> None:
    previous = {"signature": SIG, "parts": {"0": "a"}, "final": "summary", "other": 1}
    assert resume_state(previous, "text", "parts", carry=("final",)) == {"signature": SIG, "parts": {"0": "a"},
                                                                         "final": "summary"}  # fmt: skip


def test_other_input_or_no_previous_attempt_starts_afresh() -> None:
    assert resume_state({"signature": SIG, "done": {"0": "a"}}, "other text", "done")["done"] == {}
    assert resume_state({}, "text", "done") == {"signature": SIG, "done": {}}
    assert resume_state({"signature": SIG, "done": ["not", "a", "dict"]}, "text", "done")["done"] == {}
