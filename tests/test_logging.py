"""Logs: JSON lines in $TRAX_HOME/logs, redaction of keys and Authorization headers, nothing secret under the home."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tests.daemon_helpers import Daemon, home_env, open_home_store, wait_until
from traxd import logging as trax_logging

ENV_KEY = "sk-envsecret-0123456789abcdef"
CONFIG_KEY = "ds-configsecret-9876543210"


def test_redaction_of_known_keys_bearer_tokens_and_fields() -> None:
    trax_logging.register_secrets(["plain-secret-value-42"])
    text = trax_logging.redact_text("key plain-secret-value-42, Authorization: Bearer abcdefghijkl, sk-abcdefghijk1")
    assert "plain-secret-value-42" not in text and "abcdefghijkl" not in text and "sk-abcdefghijk1" not in text
    event = trax_logging.redact_processor(None, "info", {"event": "x", "headers": {"Authorization": "Bearer zz"},
                                                          "api_key": "whatever"})  # fmt: skip
    assert event["headers"]["Authorization"] == "[REDACTED]" and event["api_key"] == "[REDACTED]"


def test_json_lines_private_file_and_library_logs_redacted(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    trax_logging.register_secrets(["lib-secret-value-77"])
    trax_logging.configure("info", logs, tty=False)
    try:
        trax_logging.get_logger("test").info("task_claimed", task_id=1, note="lib-secret-value-77")
        logging.getLogger("httpx").warning("request with Authorization: Bearer lib-secret-value-77")
        try:
            raise RuntimeError("boom with lib-secret-value-77")
        except RuntimeError:
            trax_logging.get_logger("test").exception("handler_crashed")
        trax_logging.flush()
        lines = [json.loads(line) for line in (logs / "traxd.log").read_text().splitlines()]
    finally:
        trax_logging.configure("warning")
    assert next(line["event"] for line in lines) == "task_claimed"
    assert all("timestamp" in line and "level" in line for line in lines)
    assert "lib-secret-value-77" not in (logs / "traxd.log").read_text()
    assert any("boom with [REDACTED]" in line.get("exception", "") for line in lines)
    assert oct((logs / "traxd.log").stat().st_mode & 0o777) == "0o600"


def test_rotation_keeps_backups(tmp_path: Path) -> None:
    handler = trax_logging.PrivateRotatingFileHandler(tmp_path / "t.log", maxBytes=200, backupCount=2)
    logger = logging.getLogger("trax-rotation-test")
    logger.addHandler(handler)
    try:
        for i in range(50):
            logger.warning("line %d %s", i, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (tmp_path / "t.log.1").exists() and (tmp_path / "t.log.2").exists() and not (tmp_path / "t.log.3").exists()


def test_a_key_never_reaches_any_file_under_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "config.toml").write_text(f'deepseek_api_key = "{CONFIG_KEY}"\nlog_level = "debug"\n')
    (home / "inbox" / "a.mp3").write_bytes(b"audio")
    (home / "inbox" / "links.txt").write_text("https://example.org/x.mp3\n")
    env = home_env(home, "leaky", OPENAI_API_KEY=ENV_KEY, TRAX_LEASE_SECONDS="3")
    daemon = Daemon(home, env).start().wait_ready()
    try:
        store = open_home_store(home)
        try:
            wait_until(lambda: any(len(t.errors) >= 2 for t in store.list_tasks()), what="failed attempts")
        finally:
            store.engine.dispose()
        daemon.term()
        assert daemon.wait_exit() == 0
    finally:
        daemon.stop()
    leaks = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if ENV_KEY.encode() in data or CONFIG_KEY.encode() in data:
                leaks.append(path.name)
    log_text = (home / "logs" / "traxd.log").read_text()
    assert "task_failed" in log_text and "[REDACTED]" in log_text
    assert leaks == ["config.toml"], leaks  # only where the user put it


def test_a_logger_used_before_configure_follows_the_configured_level(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    early = trax_logging.get_logger("early-bird")
    trax_logging.configure("warning")
    early.debug("before_configure")  # structlog caches this logger here, at the warning level
    trax_logging.configure("debug", logs, tty=False)
    try:
        assert early.is_enabled_for(logging.DEBUG)
        early.debug("after_configure")
        trax_logging.configure("warning", logs, tty=False)
        assert not early.is_enabled_for(logging.DEBUG)
        early.debug("quiet_again")
        trax_logging.flush()
        events = [json.loads(line)["event"] for line in (logs / "traxd.log").read_text().splitlines()]
    finally:
        trax_logging.configure("warning")
    assert events == ["after_configure"]
