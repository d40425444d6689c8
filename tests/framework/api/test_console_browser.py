"""The console in headless Chromium against a real server, worker, RabbitMQ and database.

Each view and action, keyboard-only use, an axe-core accessibility check (axe-core from npm, installed by
``make test``, injected into the page), tables that fit their columns at 1400 px, and screenshots at 360,
1280 and 1920 px kept as artefacts (in ``SCREENSHOT_DIR``, default a directory under pytest's tmp, printed).
Needs Debian's ``chromium``; no browser is downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, UNREACHABLE, token, unavailable, wait_for

from .test_console_api import dead_detail, publish_bad

pytestmark = pytest.mark.rabbitmq

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
VIEWS = {"overview": "#/", "history": "#/history", "dead": "#/dead", "workers": "#/workers",
         "calendar": "#/calendar?days=7"}
WIDTHS = (360, 1280, 1920)
#: What each view shows once loaded.
READY = {"overview": "#jobs tbody tr[data-job]", "history": "#history tbody tr[data-message-id]",
         "dead": "#groups .group", "workers": "#workers tbody tr[data-worker]",
         "calendar": "#calendar tbody tr[data-job]", "detail": "#detail .facts"}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept after the run: pytest keeps its last tmp directories)."""
    directory = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path_factory.mktemp("console-screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {directory}")
    return directory


@pytest.fixture(scope="module")
def dead_ids(server: str, worker: Path, service_env: dict[str, str]) -> list[str]:
    """Three dead letters (and a run of the schedule), so every view has rows."""
    import httpx

    from tests.support import bearer

    httpx.post(f"{server}/api/v1/jobs/nightly-diagnostics/run", headers=bearer("operate"), json={}, timeout=20)
    ids = [publish_bad(service_env, "browser", i) for i in range(3)]
    for dead_id in ids:
        wait_for(lambda d=dead_id: dead_detail(server, d), "the dead letters", timeout=30, every=0.2,
                 ignore=UNREACHABLE)
    return ids


def open_console(browser: Any, server: str, scope: str = "operate", width: int = 1440, view: str = "#/",
                 bypass_csp: bool = False) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 1000}, bypass_csp=bypass_csp)
    page.goto(f"{server}/?token={token(scope)}{view}")
    page.locator("#app").wait_for(state="visible", timeout=15_000)
    return page


def test_each_view_renders_and_is_screenshotted_at_360_1280_and_1920_px(server, browser, dead_ids, shots):
    for width in WIDTHS:
        page = open_console(browser, server, width=width)
        page.locator("#runs tbody tr[data-message-id]").first.wait_for(timeout=15_000)
        for name, view in VIEWS.items():
            page.goto(f"{server}/{view}")
            page.locator(f"#view-{name}").wait_for(state="visible", timeout=10_000)
            page.locator(READY[name]).first.wait_for(timeout=15_000)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
            page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        page.close()
    assert len(list(shots.glob("*.png"))) == len(VIEWS) * len(WIDTHS)
    docs = ROOT / "docs" / "console.png"
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(shots / "overview-1280.png", docs)


def test_tables_fit_their_columns_at_1400_px(server, browser, dead_ids):
    page = open_console(browser, server, width=1400)
    page.locator("#runs tbody tr[data-message-id]").first.wait_for(timeout=15_000)
    for view in ("#/", "#/history", "#/dead", "#/workers"):
        page.goto(f"{server}/{view}")
        page.locator(".view:not([hidden]) table tbody tr").first.wait_for(timeout=15_000)
        cut = page.evaluate("""() => [...document.querySelectorAll('.view:not([hidden]) table')]
            .filter(t => t.offsetParent && t.scrollWidth > t.parentElement.clientWidth + 1)
            .map(t => t.id || 'table')""")
        assert cut == [], f"{view}: tables wider than their panel: {cut}"
    started = page.locator("#runs thead th", has_text="Started")
    page.goto(f"{server}/#/")
    assert started.is_visible() and page.locator("#runs thead th", has_text="Duration").is_visible()
    page.close()


def test_a_run_and_a_dead_letter_open_their_detail_from_the_lists(server, browser, dead_ids):
    page = open_console(browser, server)
    page.locator(f'#dead tbody tr[data-dead-id="{dead_ids[0]}"] a').click()
    page.locator("#view-detail .facts").wait_for(timeout=10_000)
    text = page.inner_text("#detail")
    assert dead_ids[0] in text and "ArgumentsInvalid" in text and "Timeline" in text
    page.locator("#detail details summary").first.click()
    assert "Traceback" in page.inner_text("#detail details pre")
    page.goto(f"{server}/#/history?status=dead")
    page.locator(f'#history tbody tr[data-message-id="{dead_ids[1]}"] a').click()
    page.wait_for_function("([id]) => document.querySelector('#detail .facts').textContent.includes(id)",
                           arg=[dead_ids[1]], timeout=10_000)
    assert page.url.endswith(f"#/runs/{dead_ids[1]}") and "diagnostics" in page.text_content("#h-detail")
    page.close()


def test_history_search_filters_and_loads_older_pages(server, browser, dead_ids):
    page = open_console(browser, server, view="#/history")
    page.fill("#history-form input[name=error]", "ArgumentsInvalid")
    page.select_option("#history-form select[name=status]", "dead")
    page.click("#history-form button[type=submit]")
    page.wait_for_function("() => location.hash.includes('error=ArgumentsInvalid')")
    page.locator(f'#history tbody tr[data-message-id="{dead_ids[2]}"]').wait_for(timeout=10_000)
    page.wait_for_function("() => [...document.querySelectorAll('#history tbody .badge')]"
                           ".every(b => b.textContent === 'dead')", timeout=10_000)
    assert set(page.eval_on_selector_all("#history tbody .badge", "b => b.map(x => x.textContent)")) == {"dead"}
    page.fill("#history-form input[name=error]", "no such error text")
    page.click("#history-form button[type=submit]")
    page.locator("#history tbody tr.empty").wait_for(timeout=10_000)
    page.close()


def test_dead_letters_are_grouped_and_a_selection_is_replayed_then_purged(server, browser, service_env):
    ids = [publish_bad(service_env, "bulk-ui", i) for i in range(2)]
    for dead_id in ids:
        wait_for(lambda d=dead_id: dead_detail(server, d), "the dead letters", timeout=30, every=0.2,
                 ignore=UNREACHABLE)
    page = open_console(browser, server, view="#/dead")
    page.locator(f'#groups tr[data-dead-id="{ids[0]}"]').wait_for(timeout=10_000)
    page.check(f'input[data-select="{ids[0]}"]')
    assert page.inner_text("#selected-count") == "1 selected"
    page.click('button[data-bulk="replay"]')
    page.locator(".toast.ok", has_text="Replayed 1").wait_for(timeout=20_000)
    page.locator(f'#groups tr[data-dead-id="{ids[0]}"]').wait_for(state="detached", timeout=20_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.check(f'input[data-select="{ids[1]}"]')
    page.click('button[data-bulk="purge"]')
    page.locator(".toast.ok", has_text="Purged 1").wait_for(timeout=20_000)
    page.locator(f'#groups tr[data-dead-id="{ids[1]}"]').wait_for(state="detached", timeout=20_000)
    assert dead_detail(server, ids[1])["dead_letter"]["state"] == "purged"
    page.close()


def test_edited_arguments_the_job_refuses_are_shown_and_nothing_is_sent(server, browser, service_env):
    dead_id = publish_bad(service_env, "edit-me")
    wait_for(lambda: dead_detail(server, dead_id), "the dead letter", timeout=30, every=0.2, ignore=UNREACHABLE)
    page = open_console(browser, server, view=f"#/dead/{dead_id}")
    page.locator("#replay-form").wait_for(timeout=10_000)
    page.fill("#edit-args", '["still", "wrong"]')
    page.click("#replay-form button[type=submit]")
    page.locator("#edit-error").wait_for(state="visible", timeout=10_000)
    assert page.inner_text("#edit-error").startswith("args:")
    assert dead_detail(server, dead_id)["dead_letter"]["state"] == "dead"
    page.fill("#edit-args", "[]")
    page.click("#replay-form button[type=submit]")
    page.locator("#detail .replayed-as a").wait_for(timeout=20_000)
    assert page.locator("#detail .b-replayed").count() == 1 and page.locator("#replay-form").count() == 0
    assert dead_detail(server, dead_id)["dead_letter"]["state"] == "replayed"
    page.close()


def test_the_workers_and_calendar_views_show_heartbeats_and_the_schedule_ahead(server, browser, dead_ids):
    page = open_console(browser, server, view="#/workers")
    row = page.locator("#workers tbody tr[data-worker]").first
    row.wait_for(timeout=15_000)
    assert "default" in row.inner_text() and "s ago" in row.inner_text()
    page.goto(f"{server}/#/calendar?days=1")
    page.locator('#calendar tbody tr[data-job="nightly-diagnostics"]').wait_for(timeout=10_000)
    assert page.locator("#calendar thead th").count() == 25  # the schedule and 24 hours
    page.click('.segmented a[data-days="7"]')
    page.wait_for_function("() => document.querySelectorAll('#calendar thead th').length === 8")
    page.close()


def test_a_paused_schedule_is_dimmed_in_the_calendar(server, browser):
    import httpx

    from tests.support import bearer

    httpx.post(f"{server}/api/v1/jobs/nightly-diagnostics/pause", headers=bearer("operate"),
               json={"note": "calendar test"}, timeout=20).raise_for_status()
    try:
        page = open_console(browser, server, view="#/calendar?days=7")
        row = page.locator('#calendar tbody tr[data-job="nightly-diagnostics"].paused')
        row.wait_for(timeout=10_000)
        assert "calendar test" in row.text_content()
        page.close()
    finally:
        httpx.post(f"{server}/api/v1/jobs/nightly-diagnostics/resume", headers=bearer("operate"), timeout=20)


def test_the_console_is_usable_with_the_keyboard_alone(server, browser, dead_ids):
    page = open_console(browser, server)
    page.locator("#runs tbody tr[data-message-id]").first.wait_for(timeout=15_000)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("g")
    page.keyboard.press("d")
    page.locator("#view-dead").wait_for(state="visible", timeout=10_000)
    page.keyboard.press("/")
    page.wait_for_function("() => document.activeElement.name === 'actor'", timeout=10_000)
    page.keyboard.type("diagnostics")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash.includes('actor=diagnostics')")
    # The rows of the filtered search, not those of the unfiltered one "/" loaded (they are replaced under focus).
    link = page.locator("#history[data-query*='actor=diagnostics'] tbody tr[data-message-id] a").first
    link.wait_for(timeout=10_000)
    link.focus()
    page.keyboard.press("Enter")
    page.locator("#view-detail .facts").wait_for(timeout=10_000)
    page.close()


def test_no_serious_accessibility_violation_in_any_view(server, browser, dead_ids):
    if not AXE.is_file():
        unavailable(f"axe-core at {AXE} (npm ci; make test runs it)")
    # The page's CSP refuses any script but its own: axe is injected with the CSP bypassed (this test only).
    page = open_console(browser, server, bypass_csp=True)
    page.locator("#runs tbody tr[data-message-id]").first.wait_for(timeout=15_000)
    found: dict[str, list[str]] = {}
    for name, view in {**VIEWS, "detail": f"#/dead/{dead_ids[0]}"}.items():
        page.goto(f"{server}/{view}")
        page.locator(f"#view-{name}").wait_for(state="visible", timeout=10_000)
        page.locator(READY[name]).first.wait_for(timeout=15_000)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]
                   if v["impact"] in ("serious", "critical")]
        if serious:
            found[name] = serious
    assert found == {}, found
    page.close()


def test_a_bad_token_in_the_address_gets_a_message_on_the_sign_in_form(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/?token=not-a-token")
    page.locator("#login-error").wait_for(state="visible", timeout=10_000)
    assert "token in the address was refused" in page.inner_text("#login-error")
    assert "token=" not in page.url
    page.close()


def test_a_read_only_token_sees_no_operate_control_anywhere(server, browser, dead_ids):
    page = open_console(browser, server, scope="read")
    page.locator("#jobs tbody tr[data-job]").first.wait_for(timeout=15_000)
    page.locator("#dead tbody tr[data-dead-id]").first.wait_for(timeout=15_000)
    for view, name in (("#/", "overview"), ("#/dead", "dead"), (f"#/dead/{dead_ids[0]}", "detail")):
        page.goto(f"{server}/{view}")
        page.locator(READY[name]).first.wait_for(timeout=15_000)
        assert page.locator("button[data-action]:visible, button[data-bulk]:visible, #replay-form").count() == 0
    page.close()
