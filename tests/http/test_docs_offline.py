"""/docs and /redoc render in a browser cut off from everything but the broker.

A real `drl serve` broker, headless Debian chromium driven by Playwright. The browser reaches the
broker under a non-loopback host name (mapped to 127.0.0.1 inside chromium), as on a government
network: Swagger UI and ReDoc treat ``localhost`` specially, so a loopback address could hide a
request they would make elsewhere. Every request is recorded, and any to another origin is
aborted; the test then asserts there were none and that both pages rendered the API.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support.http_kit import RunningBroker, running_broker
from tests.support.offline_browser import CHROMIUM, Traffic
from tests.support.offline_browser import CHROMIUM_ARGS as BASE_ARGS

#: The name the browser uses for the broker; chromium resolves it to 127.0.0.1 itself.
DOCS_HOST = "ledger-broker.example.gov"
CHROMIUM_ARGS = [
    *BASE_ARGS,
    f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1",
    # Keep plain http:// as typed: no https:// upgrade attempt to the broker's name.
    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
]
TITLE = "Data Rights Ledger broker"
SCREENSHOTS = Path(tempfile.gettempdir())
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("docs") / "home") as b:
        yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; "
            ".ci/run does) to test the offline API docs",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def openapi(broker: RunningBroker) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{broker.url}/openapi.json", timeout=10).json()
    return document


@contextmanager
def offline_page(browser: Browser, broker: RunningBroker) -> Iterator[tuple[Page, Traffic]]:
    """A page that may reach only the broker: anything else is recorded, then aborted."""
    traffic = Traffic(origin=f"http://{DOCS_HOST}:{urlsplit(broker.url).port}")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)

    def gate(route: Route) -> None:
        if traffic.is_local(route.request.url):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    # Recorded apart from the gate, so a request that bypassed routing is seen too.
    context.on("request", lambda request: traffic.seen.append(request.url))
    page = context.new_page()
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    try:
        yield page, traffic
    finally:
        context.close()


def wait_rendered(locator: Locator, traffic: Traffic) -> None:
    """Wait for ``locator``; if it never shows, say what the page tried to reach instead."""
    try:
        locator.wait_for()
    except PlaywrightTimeout as exc:
        raise AssertionError(
            f"the page did not render; requests that left the broker: {traffic.foreign}; "
            f"page errors: {traffic.errors}"
        ) from exc


def operations(openapi: dict[str, Any]) -> list[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [op for path in openapi["paths"].values() for m, op in path.items() if m in methods]


def test_swagger_ui_renders_without_the_internet(
    browser: Browser, broker: RunningBroker, openapi: dict[str, Any]
) -> None:
    expected = len(operations(openapi))
    assert expected > 10
    with offline_page(browser, broker) as (page, traffic):
        page.goto(f"{traffic.origin}/docs")
        wait_rendered(page.locator(".opblock").nth(expected - 1), traffic)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=SCREENSHOTS / "docs.png")
        assert page.title() == f"{TITLE} - Swagger UI"
        assert TITLE in page.locator(".info .title").inner_text()
        assert page.locator(".opblock").count() == expected
        assert page.locator(".swagger-ui .opblock-tag").count() >= 5
        assert traffic.foreign == [], f"requests left the broker: {traffic.foreign}"
        assert traffic.errors == []
        assert f"{traffic.origin}/static/docs/swagger-ui-bundle.js" in traffic.seen
        assert f"{traffic.origin}/openapi.json" in traffic.seen


def test_redoc_renders_without_the_internet(
    browser: Browser, broker: RunningBroker, openapi: dict[str, Any]
) -> None:
    summaries = [op["summary"] for op in operations(openapi) if op.get("summary")]
    assert summaries, "the OpenAPI document has no operation summaries to look for"
    with offline_page(browser, broker) as (page, traffic):
        page.goto(f"{traffic.origin}/redoc")
        wait_rendered(page.locator("h1", has_text=TITLE), traffic)
        heading = page.locator("h2", has_text=summaries[0]).first
        heading.wait_for()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=SCREENSHOTS / "redoc.png")
        assert page.title() == f"{TITLE} - ReDoc"
        assert page.locator("[role=menuitem]").count() > 10
        assert heading.is_visible()
        assert traffic.foreign == [], f"requests left the broker: {traffic.foreign}"
        assert traffic.errors == []
        assert any("/static/docs/" in url and url.endswith(".js") for url in traffic.seen)


def test_docs_assets_need_no_signature(broker: RunningBroker) -> None:
    for path in ("/docs", "/redoc", "/static/docs/swagger-ui.css", "/static/docs/favicon.png"):
        response = httpx.get(f"{broker.url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert "cdn.jsdelivr.net" not in response.text
        assert "fonts.googleapis.com" not in response.text
