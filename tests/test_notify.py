"""Notifications when a job ends: signed webhooks to a real loopback receiver, Apprise, the address rules, the
durable NOTIFY task (in-process pool here; a daemon killed with SIGKILL in test_notify_crash.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from tests.fakes.receiver import Receiver
from traxd import notify
from traxd.cli.traxctl_cmd import app
from traxd.config import Settings, Webhook, load_settings
from traxd.daemon.jobcontrol import JobControl
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.database import open_store
from traxd.errors import PermanentError
from traxd.handlers.notify import handle_notify
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.types import Job, NewJob, NewTask, TaskState, TaskType

runner = CliRunner()
SECRET = "whsec_test_0123456789"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """A home on SQLite, then on PostgreSQL (when a server is given)."""
    forget_environment(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TRAX_HOME", str(home))
    monkeypatch.setenv("TRAX_DATABASE_URL", db_url)
    return home


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET, fail_first=2) as r:
        yield r


def configure(home: Path, text: str) -> Settings:
    (home / "config.toml").write_text(text, encoding="utf-8")
    return load_settings()


def hook_config(url: str, allow_private: bool = True) -> str:
    return f'webhooks = [{{ url = "{url}", secret = "{SECRET}", allow_private = {str(allow_private).lower()} }}]\n'


def transcript_stage(out: Path) -> Any:
    """A PREPROCESS stand-in that writes NAME.json/.txt like TRANSCRIBE and ends the job (no chunks follow)."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("fail"):
            raise PermanentError("not a media file: broken.mp3")
        name = payload["name"]
        segments = [{"start": 0.0, "end": 2.0, "text": f"Hello from {name}.", "speaker": "A"},
                    {"start": 2.0, "end": 4.5, "text": "The second turn " + "word " * 200, "speaker": "B"}]  # fmt: skip
        json_path = out / f"{name}.json"
        json_path.write_text(json.dumps({"duration": 4.5, "language": "en", "segments": segments}), encoding="utf-8")
        (out / f"{name}.txt").write_text("whole transcript", encoding="utf-8")
        return {"outputs": {"json": str(json_path), "txt": str(out / f"{name}.txt")}}

    return handle


def run_jobs(store: Store, settings: Settings, names: list[str], fail: tuple[str, ...] = ()) -> list[Job]:
    out = settings.home / "outbox"
    out.mkdir(exist_ok=True)
    jobs = [store.create_job(NewJob(f"/in/{n}.mp3", n, str(out)),
                             [NewTask(TaskType.PREPROCESS, {"name": n, "fail": n in fail}, dedupe_key=n)])[0]
            for n in names]  # fmt: skip
    registry = Registry({TaskType.PREPROCESS: transcript_stage(out), TaskType.NOTIFY: handle_notify})
    config = PoolConfig(slots=2, idle_seconds=0.02, control_seconds=0.05, settings=settings, notify=True,
                        pin_successors=False)  # fmt: skip
    Pool(store, registry, config).run(drain=True)
    return jobs


def notify_tasks(store: Store) -> list[Any]:
    return [t for t in store.list_tasks(limit=1000) if t.type is TaskType.NOTIFY]


def status_json() -> dict[str, Any]:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_signature_follows_stripes_scheme() -> None:
    body = b'{"id":"evt_1"}'
    header = notify.signature("k3y", 1700000000, body)
    mac = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"


def test_one_task_per_target_and_no_secret_in_the_database(home: Path) -> None:
    settings = configure(home, 'notify = ["desktop", "json://user:tok3n@example.com/x"]\n'
                               + hook_config("https://hooks.example.com/T0KEN"))  # fmt: skip
    job = Job(7, "/in/a.mp3", "a", None, "default", {}, 0.0)
    tasks = notify.end_events(settings, job, TaskState.SUCCEEDED, {"json_path": "/o/a.json"}, 1000.0)
    assert [t.type for t in tasks] == [TaskType.NOTIFY] * 3
    assert len({t.payload["event"]["id"] for t in tasks}) == 1  # one event, told to three targets
    stored = json.dumps([t.payload for t in tasks])
    for secret in ("tok3n", "T0KEN", SECRET, "example.com"):
        assert secret not in stored
    assert tasks[0].payload["event"]["type"] == "job.succeeded"


def test_webhook_retries_through_500s_and_arrives_signed_once_per_job(home: Path, receiver: Receiver) -> None:
    settings = configure(home, hook_config(receiver.url))
    store = open_store(settings)
    try:
        jobs = run_jobs(store, settings, ["one", "two", "bad"], fail=("bad",))
        accepted = receiver.accepted()
        assert len(receiver.deliveries) == 9  # two 500s, then the 200, for each of three events
        assert all(d.signed_right for d in receiver.deliveries)
        by_job = {d.event["data"]["job_id"]: d.event for d in accepted}
        assert sorted(by_job) == sorted(j.id for j in jobs) and len(accepted) == 3
        assert len({d.event["id"] for d in receiver.deliveries}) == 3  # retries carry the same id
        one = by_job[jobs[0].id]
        assert one["type"] == "job.succeeded" and one["data"]["state"] == "succeeded"
        assert one["data"]["outputs"] == ["one.json", "one.txt"] and one["data"]["duration"] == 4.5
        assert one["data"]["speakers"] == ["A", "B"] and one["data"]["excerpt"].startswith("Hello from one.")
        assert len(one["data"]["excerpt"]) <= notify.EXCERPT_CHARS and "json_path" not in json.dumps(one)
        bad = by_job[jobs[2].id]
        assert bad["type"] == "job.failed" and bad["data"]["error"] == "not a media file: broken.mp3"
        # Deliveries are tasks of no job: the jobs' own states and counts are what they were.
        assert all(t.job_id is None and t.state is TaskState.SUCCEEDED for t in notify_tasks(store))
        assert all(t.type is TaskType.PREPROCESS for j in jobs for t in store.tasks_of_job(j.id))
    finally:
        store.engine.dispose()
    status = status_json()
    assert (status["succeeded"], status["failed"], status["queued"]) == (2, 1, 0)


def test_private_target_is_refused_without_allow_private_and_never_reached(home: Path, receiver: Receiver) -> None:
    settings = configure(home, hook_config(receiver.url, allow_private=False))
    store = open_store(settings)
    try:
        run_jobs(store, settings, ["one"])
        (task,) = notify_tasks(store)
    finally:
        store.engine.dispose()
    assert receiver.deliveries == []
    assert task.state is TaskState.FAILED and task.error_kind == "permanent" and task.attempts == 1
    message = task.error_message or ""
    assert "\n" not in message and "refused 127.0.0.1" in message and "allow_private = true" in message
    status = status_json()  # a failed delivery is not a failed input
    assert (status["succeeded"], status["failed"]) == (1, 0)


def test_cancel_queues_the_cancelled_event_in_the_same_transaction(home: Path, receiver: Receiver) -> None:
    settings = configure(home, hook_config(receiver.url))
    store = open_store(settings)
    try:
        job, _, _ = store.create_job(NewJob("/in/c.mp3", "c"), [NewTask(TaskType.PREPROCESS, {"name": "c"})])
        control = JobControl(store, settings.tmp_dir, settings)
        assert control.cancel_job(job.id) == 1
        assert control.cancel_job(job.id) == 0  # nothing left to cancel: no second event
        (task,) = notify_tasks(store)
        assert task.payload["event"]["type"] == "job.cancelled" and task.job_id is None
        Pool(store, Registry({TaskType.NOTIFY: handle_notify}),
             PoolConfig(slots=1, idle_seconds=0.02, settings=settings)).run(drain=True)  # fmt: skip
    finally:
        store.engine.dispose()
    assert [d.event["type"] for d in receiver.accepted()] == ["job.cancelled"]


def test_traxctl_notify_test_prints_each_targets_answer(home: Path, receiver: Receiver) -> None:
    receiver.fail_first = 0
    refused = receiver.url.replace("/hook", "/refused")
    configure(home, f'notify = ["json://127.0.0.1:{receiver.url.split(":")[2]}"]\n'
                    f'webhooks = [{{ url = "{receiver.url}", secret = "{SECRET}", allow_private = true }},\n'
                    f'            {{ url = "{refused}", secret = "x" }}]\n')  # fmt: skip
    result = runner.invoke(app, ["notify", "test"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 3, result.output
    port = receiver.url.split(":")[2].split("/")[0]
    assert lines[0] == f"apprise json://127.0.0.1:{port}: sent"
    assert lines[1] == f"webhook http://127.0.0.1:{port}: HTTP 200 ok"
    assert lines[2].startswith(f"webhook http://127.0.0.1:{port}: failed (permanent): refused 127.0.0.1")
    apprise_post, hook_post = receiver.deliveries  # the refused one never arrived
    assert apprise_post.event.get("title") == "Transcript ready" and "test" in apprise_post.event.get("message", "")
    assert hook_post.signed_right and hook_post.event["type"] == "test"


def test_apprise_target_is_a_durable_task_too(home: Path, receiver: Receiver) -> None:
    receiver.fail_first = 0
    port = receiver.url.split(":")[2].split("/")[0]
    settings = configure(home, f'notify = ["json://127.0.0.1:{port}/apprise"]\n')
    store = open_store(settings)
    try:
        run_jobs(store, settings, ["memo"])
        (task,) = notify_tasks(store)
    finally:
        store.engine.dispose()
    assert task.state is TaskState.SUCCEEDED and task.result == {
        "target": f"apprise json://127.0.0.1:{port}", "event_id": task.payload["event"]["id"], "answer": "sent"}
    (post,) = receiver.deliveries
    assert post.event["title"] == "Transcript ready" and post.event["message"].startswith("memo — Hello from memo.")


def test_notify_test_without_targets_says_how_to_set_them(home: Path) -> None:
    result = runner.invoke(app, ["notify", "test"])
    assert result.exit_code != 0 and "no notification targets" in result.output
    assert "Traceback" not in result.output


def test_webhook_settings_from_the_environment(home: Path) -> None:
    env = {"TRAX_HOME": str(home), "TRAX_WEBHOOK_URL": "https://h.example/x", "TRAX_WEBHOOK_SECRET": "s",
           "TRAX_WEBHOOK_ALLOW_PRIVATE": "1", "TRAX_NOTIFY": "desktop, ntfy://topic"}  # fmt: skip
    settings = load_settings(env=env)
    assert settings.hooks == (Webhook("https://h.example/x", "s", True),)
    assert [t.kind for t in notify.targets(settings)] == ["desktop", "apprise", "webhook"]


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS uses osascript")
def test_desktop_runs_notify_send_or_skips_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traxd.adapters.notifiers import send_desktop

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert send_desktop("Transcript ready", "a").startswith("skipped")
    tools = tmp_path / "bin"
    tools.mkdir()
    script = tools / "notify-send"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args"}\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    assert send_desktop("Transcript ready", "talk — Hello") == "shown"
    assert (tmp_path / "args").read_text().splitlines() == ["--app-name=Trax", "Transcript ready", "talk — Hello"]


def test_a_5xx_is_retried_after_its_retry_after_and_a_4xx_fails_for_good() -> None:
    from traxd.errors import RetryableError
    from traxd.handlers.notify import deliver

    with Receiver(SECRET, fail_first=1, retry_after="7") as r:
        target = notify.Target("webhook", "k", "webhook", r.url, Webhook(r.url, SECRET, True))
        event = notify.test_event(0)  # the receiver fails each event id's first delivery
        with pytest.raises(RetryableError) as retry:
            deliver(target, event)
        assert retry.value.retry_after == 7 and retry.value.http_status == 500
        assert deliver(target, event) == "HTTP 200 ok"
        r.ok_status = 410
        with pytest.raises(PermanentError) as gone:
            deliver(target, event)
    assert str(gone.value) == "webhook answered HTTP 410 Gone" and gone.value.http_status == 410


def test_a_poison_task_fails_its_job_and_that_is_told_too(home: Path, receiver: Receiver) -> None:
    from traxd.clock import FakeClock

    settings = configure(home, hook_config(receiver.url))
    clock = FakeClock()
    opened = open_store(settings)
    store = Store(opened.engine, clock)
    try:
        job, _, _ = store.create_job(NewJob("/in/p.mp3", "p"), [NewTask(TaskType.PREPROCESS, {"name": "p"})])
        pool = Pool(store, Registry({TaskType.NOTIFY: handle_notify}), PoolConfig(settings=settings, notify=True),
                    PoolWiring(clock=clock))  # fmt: skip
        for _death in range(4):  # max_retries 3: the fourth dead worker makes it a poison task
            assert notify_tasks(store) == []
            assert store.claim("ghost-host:1:1", 1, 1.0)
            clock.advance(5)
            assert pool.maintenance.rescue() == 1
        (stage,) = store.tasks_of_job(job.id)
        (task,) = notify_tasks(store)
    finally:
        opened.engine.dispose()
    assert stage.error_kind == "poison" and task.job_id is None
    event = task.payload["event"]
    assert event["type"] == "job.failed" and event["data"]["error"].startswith("poison task: its worker died 4 times")
