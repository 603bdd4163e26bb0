"""The dashboard in a real headless browser (Debian's chromium driven by Playwright) against a real `traxd run --dashboard`.

A file dropped into the inbox shows up and moves to succeeded without a reload; Retry on a failed job requeues it;
a file named like markup renders as text and runs nothing. A screenshot is saved under the test's temp folder
(and to $TRAX_DASHBOARD_SCREENSHOT when set, which is how docs/dashboard.png is made).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.daemon_helpers import Daemon, home_env, open_home_store, wait_until
from tests.test_dashboard import HOSTILE, Served, free_port, seed
from traxd.clock import FakeClock
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store
from traxd.types import TaskState

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, str]]:
    home = tmp_path / "home"
    port = free_port()
    env = home_env(home, "slow", TRAX_TEST_SLEEP="1")
    d = Daemon(home, env, ("--workers", "2", "--dashboard", "--dashboard-port", str(port))).start().wait_ready()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(base), what="the dashboard")
    yield d, base
    d.stop()


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/api/summary", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        browser.close()


def test_drop_watch_retry_and_hostile_names_in_a_browser(daemon: tuple[Daemon, str], page, tmp_path: Path) -> None:
    d, base = daemon
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base + "/")
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

    (d.home / "inbox" / f"{HOSTILE}.wav").write_bytes(b"RIFF" + os.urandom(64))
    row = page.locator("#jobs tr", has_text=HOSTILE)
    row.wait_for(timeout=90_000)
    page.wait_for_function("() => [...document.querySelectorAll('#jobs tr')].some(tr => tr.textContent.includes("
                           "'onerror') && tr.querySelector('td.state').textContent.trim() === 'succeeded')",
                           timeout=120_000)  # fmt: skip
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#jobs img").count() == 0 and dialogs == []
    # The counts refresh on their own (computed at most once a second): wait for them to catch up.
    page.wait_for_function("() => document.querySelector('#count-succeeded b').textContent.trim() === '1'",
                           timeout=60_000)  # fmt: skip
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if target := os.environ.get("TRAX_DASHBOARD_SCREENSHOT"):
        shutil.copy(tmp_path / "dashboard.png", target)

    (d.home / "inbox" / "links.txt").write_text("ftp://example.org/old.mp3\n")
    store = open_home_store(d.home)
    try:
        failed = wait_until(lambda: store.list_tasks(TaskState.FAILED, 5), what="the rejected URL's failed job")
        job_id = failed[0].job_id
        page.goto(base + "/failed")
        page.locator(f'#failed tr[data-job="{job_id}"] button.retry').click()
        page.wait_for_url(base + "/failed")
        wait_until(lambda: store.tasks_of_job(job_id)[0].state is not TaskState.FAILED, what="the retry")
        assert store.tasks_of_job(job_id)[0].attempts <= 1
    finally:
        store.engine.dispose()

    page.goto(base + f"/jobs/{page_job_id(store_home=d.home)}")
    assert page.locator("h1 .name").inner_text() == HOSTILE and dialogs == []
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)


def page_job_id(store_home: Path) -> int:
    """The id of the hostile-named job."""
    store = open_home_store(store_home)
    try:
        return next(t.job_id for t in store.list_tasks(None, 50) if t.job_id is not None and
                    (job := store.get_job(t.job_id)) is not None and job.name == HOSTILE)  # fmt: skip
    finally:
        store.engine.dispose()


def test_a_click_on_a_transcript_line_plays_the_original_from_there(sqlite_url: str, page, tmp_path: Path) -> None:
    engine = open_engine(sqlite_url)
    upgrade(engine)
    store = Store(engine, FakeClock(time.time() - 60))
    ids = seed(store, tmp_path)
    srv = Served(store, tmp_path)
    try:
        page.goto(f"{srv.base}/jobs/{ids['done']}")
        assert page.locator("#transcript").inner_text().count("said") == 1 and page.locator("img").count() == 0
        page.locator('#transcript tr[data-t="1.5"]').click()
        page.wait_for_function("() => { const a = document.getElementById('media'); "
                               "return a && a.currentTime >= 1.5 && !a.paused; }", timeout=60_000)  # fmt: skip
        page.screenshot(path=str(tmp_path / "transcript.png"), full_page=True)
    finally:
        srv.stop()
        engine.dispose()
