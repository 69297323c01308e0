"""`drl console` in a browser: sign-in by token only, the graphs, records re-checked, warnings.

One real `drl serve` broker and one demo state: a department registers a permit register and a
derived extract of it, an enterprise requests the register, is granted it and fetches it; a
regulator watches. The installed `drl console --as regulator` runs as a subprocess, and headless
Debian chromium (Playwright) drives it with the network cut: every request not to the console's
origin is recorded and aborted, and the module ends by asserting there was none. A second
console, the department's, shows the broker-reported view of a member that may not read the
whole log. Screenshots of every page go to build/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from ledger.client import keystore
from ledger.client.sdk import BrokerClient
from ledger.errors import LedgerError
from ledger.quality import validate_file
from tests.support.broker import DRL
from tests.support.http_kit import PASSPHRASE, RunningBroker, new_member, running_broker
from tests.support.offline_browser import CHROMIUM, CHROMIUM_ARGS, Traffic

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "building_permits.csv"
SCHEMA = SAMPLE.with_name("building_permits.schema.json")
SCREENSHOTS = ROOT / "build" / "screenshots"
WAIT_MS = 20_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; "
    ".ci/run does) to drive the console in a browser",
)


@dataclass
class Demo:
    """The demo state: who is who, and what they exchanged."""

    department: str
    enterprise: str
    regulator: str
    register: int
    extract: int
    grant: int
    #: After every record of the demo state, before anything a test does.
    done_at: str


@dataclass
class Console:
    """The running `drl console` and how to reach it."""

    process: subprocess.Popen[str]
    url: str  # with the token
    origin: str
    token: str

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An HTTP client signed in with the token's cookie."""
        with httpx.Client(base_url=self.origin, timeout=30) as c:
            assert c.get(f"/?token={self.token}").status_code == 303
            yield c


# -- one broker, one demo state, one console, one browser --------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("console") / "home") as b:
        yield b


def member_client(broker: RunningBroker, handle: str) -> BrokerClient:
    """The SDK as `drl --as HANDLE` opens it: proofs of its actions kept under HOME/trust."""
    keys = keystore.unlock(broker.home, handle, PASSPHRASE)
    return BrokerClient(broker.url, keys, trust_dir=broker.home / "trust")


@pytest.fixture(scope="module")
def demo(broker: RunningBroker, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    office = new_member(broker, "office", "department", "District Planning Office")
    coop = new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
    dpa = new_member(broker, "dpa", "regulator", "Data Protection Authority")
    schema = json.loads(SCHEMA.read_text())
    lines = SAMPLE.read_text().splitlines(keepends=True)
    extract = tmp_path_factory.mktemp("extract") / "permits-extract.csv"
    extract.write_text("".join(lines[:40]))
    with member_client(broker, "office") as owner, member_client(broker, "coop") as consumer:
        register = owner.register(SAMPLE, title="District building permits", schema=schema)
        derived = owner.register(
            extract, title="Permits extract", schema=schema, parents=(register.id,)
        )
        request = consumer.request_access(
            register.id, purpose="rooftop solar potential study", days=30, uses=3
        )
        approved = owner.approve(request.id)
        assert approved.grant is not None
        consumer.fetch(register.id, tmp_path_factory.mktemp("received") / "permits.csv")
    with broker.client("operator") as operator:
        assert operator.anchor().anchored
    done_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    return Demo(
        department=office.address.lower(),
        enterprise=coop.address.lower(),
        regulator=dpa.address.lower(),
        register=register.id,
        extract=derived.id,
        grant=approved.grant.id,
        done_at=done_at,
    )


@contextmanager
def running_console(broker: RunningBroker, handle: str) -> Iterator[Console]:
    """The installed `drl console --as HANDLE` on a free port, until Ctrl-C (SIGINT)."""
    process = subprocess.Popen(
        [DRL, "console", "--as", handle, "--no-browser", "--port", "0"],
        env=broker.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _printed_url(process)
        parts = urlsplit(url)
        token = parts.query.removeprefix("token=")
        running = Console(process, url, f"{parts.scheme}://{parts.netloc}", token)
        with running.client() as c:
            _verified(c)  # the console verifies at start; the pages draw from that
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, process.stderr.read() if process.stderr else ""


@pytest.fixture(scope="module")
def console(broker: RunningBroker, demo: Demo) -> Iterator[Console]:
    with running_console(broker, "dpa") as running:
        yield running


def _printed_url(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """The URL `drl console` printed (read from its stdout as it starts)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=timeout)
            if found := re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line):
                return found.group(0)
    except queue.Empty:
        process.kill()
        raise AssertionError(
            f"drl console printed no URL: {process.stderr.read() if process.stderr else ''}"
        ) from None


def _verified(c: httpx.Client, *, runs: int = 1) -> dict[str, Any]:
    """Wait for verification run ``runs`` to end (polling, as the page does)."""
    for _ in range(600):
        status: dict[str, Any] = c.get("/data/verify").json()
        if not status["job"]["running"] and status["job"]["runs"] >= runs:
            assert status["job"]["error"] is None, status["job"]["error"]
            return status
        threading.Event().wait(0.1)
    raise AssertionError(f"verification did not end: {status}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def traffic(console: Console) -> Traffic:
    return Traffic(origin=console.origin)


@contextmanager
def signed_in(browser: Browser, console: Console, traffic: Traffic) -> Iterator[Page]:
    """A page signed in with the console's link, cut off from everything but the console."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=console.origin)
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
    page.on(
        "console",
        lambda message: traffic.errors.append(message.text) if message.type == "error" else None,
    )
    try:
        page.goto(console.url)
        yield page
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"console-{name}.png", full_page=True)


def graph(page: Page, path: str) -> dict[str, Any]:
    """Open a graph page and read what cytoscape drew: node ids, edges, their classes."""
    page.goto(path)
    page.locator("#graph[data-state=ready]").wait_for()
    drawn: dict[str, Any] = page.evaluate(
        """() => ({
            nodes: window.drlGraph.nodes().map((n) => ({id: n.id(), classes: n.classes()})),
            edges: window.drlGraph.edges().map((e) => ({
                source: e.source().id(), target: e.target().id(), classes: e.classes(),
                data: e.data(),
            })),
        })"""
    )
    return drawn


# -- the tests ----------------------------------------------------------------------------------


def test_only_the_token_signs_in(
    console: Console, browser: Browser, traffic: Traffic, broker: RunningBroker
) -> None:
    port = urlsplit(console.origin).port
    bare = httpx.get(f"{console.origin}/", timeout=10)
    assert bare.status_code == 401
    assert "Set-Cookie" not in bare.headers
    assert httpx.get(f"{console.origin}/data/flow", timeout=10).status_code == 401
    assert httpx.get(f"{console.origin}/static/console.js", timeout=10).status_code == 401
    assert httpx.get(f"{console.origin}/?token=not-the-token", timeout=10).status_code == 401
    signing = httpx.get(console.url, timeout=10)
    assert signing.status_code == 303
    assert signing.headers["location"] == "/"  # the token leaves the address bar at once
    cookie = signing.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    with console.client() as c:
        assert c.get("/data/flow").status_code == 200
        # another site's page, even with the member's cookie: refused
        other = c.get("/data/flow", headers={"Origin": "http://evil.example"})
        assert other.status_code == 403
        assert c.post("/verify", headers={"Origin": "http://evil.example"}).status_code == 403
        assert c.post("/verify").status_code == 403  # a POST must say where it comes from
        # DNS rebinding: another name that resolves here is still another name
        rebound = c.get("/data/flow", headers={"Host": f"attacker.example:{port}"})
        assert rebound.status_code == 403
        assert c.get("/data/flow", headers={"Host": f"localhost:{port}"}).status_code == 200
        page = c.get("/")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        # what the browser is given holds no secret: not the passphrase, not a private key
        keys = keystore.unlock(broker.home, "dpa", PASSPHRASE)
        secrets = [
            PASSPHRASE,
            keys.account.key.hex().removeprefix("0x"),
            keys.hpke.to_bytes().hex(),
        ]
        grant = c.get("/data/timeline", params={"action": "grant"}).json()["records"][0]
        for path in ("/", "/flow", "/data/overview", "/data/flow", "/data/verify",
                     f"/records/{grant['seq']}", f"/data/records/{grant['seq']}"):  # fmt: skip
            body = c.get(path).text.lower()
            assert not [s for s in secrets if s.lower() in body], path
    with signed_in(browser, console, traffic) as page:
        assert page.url == f"{console.origin}/"
        page.locator("#card-datasets").wait_for()
        cookies = page.context.cookies()
        assert [c["httpOnly"] for c in cookies] == [True]
        shot(page, "overview")
    stranger = browser.new_context()
    try:
        page = stranger.new_page()
        answer = page.goto(f"{console.origin}/flow")
        assert answer is not None
        assert answer.status == 401
        assert "Sign in" in page.content()
    finally:
        stranger.close()


def test_a_second_console_on_a_taken_port_says_so(console: Console, broker: RunningBroker) -> None:
    port = str(urlsplit(console.origin).port)
    taken = broker.drl("console", "--as", "dpa", "--no-browser", "--port", port, timeout=60)
    assert taken.returncode == 1
    assert taken.stderr.startswith("error [port_in_use]"), taken.stderr
    assert "Traceback" not in taken.stderr


def test_the_demo_flow_graph_has_exactly_its_nodes_and_edges(
    console: Console, browser: Browser, traffic: Traffic, demo: Demo
) -> None:
    with signed_in(browser, console, traffic) as page:
        # The demo state: up to the moment it was done (later tests may revoke the grant).
        demo_state = graph(page, f"/flow?until={quote(demo.done_at)}")
        shot(page, "flow")
        assert sorted(n["id"] for n in demo_state["nodes"]) == sorted(
            [demo.department, demo.enterprise]
        )
        kinds = {n["id"]: n["classes"] for n in demo_state["nodes"]}
        assert kinds[demo.department] == ["department"]
        assert kinds[demo.enterprise] == ["enterprise"]
        edges = [(e["source"], e["target"], e["data"]["dataset"]) for e in demo_state["edges"]]
        assert edges == [(demo.department, demo.enterprise, demo.register)]
        edge = demo_state["edges"][0]
        assert edge["classes"] == ["active"]
        assert edge["data"]["purpose"] == "rooftop solar potential study"
        assert edge["data"]["uses_text"] == "1/3"
        assert edge["data"]["receipts"] == 1
        assert edge["data"]["verified"] is True
        # The whole network, now: the same organisations and the same one flow.
        now = graph(page, "/flow")
        assert sorted(n["id"] for n in now["nodes"]) == sorted(n["id"] for n in demo_state["nodes"])
        assert [(e["source"], e["target"], e["data"]["dataset"]) for e in now["edges"]] == edges
        # the extract went nowhere: its owner alone, no edge
        extract = graph(page, f"/flow?dataset={demo.extract}")
        assert [n["id"] for n in extract["nodes"]] == [demo.department]
        assert extract["edges"] == []
        # the enterprise's own flows: the same one edge, the enterprise in focus
        mine = graph(page, f"/flow?member={demo.enterprise}")
        assert [(e["source"], e["target"]) for e in mine["edges"]] == [
            (demo.department, demo.enterprise)
        ]
        assert "focus" in {n["id"]: n["classes"] for n in mine["nodes"]}[demo.enterprise]
        # a time window before anything happened is empty
        assert graph(page, "/flow?since=2001-01-01&until=2001-12-31")["edges"] == []


def test_the_lineage_graph_shows_the_derived_extract(
    console: Console, browser: Browser, traffic: Traffic, demo: Demo
) -> None:
    with signed_in(browser, console, traffic) as page:
        drawn = graph(page, f"/lineage?dataset={demo.register}")
        shot(page, "lineage")
        assert sorted(n["id"] for n in drawn["nodes"]) == [
            f"d{demo.register}",
            f"d{demo.extract}",
        ]
        assert [(e["source"], e["target"], e["classes"]) for e in drawn["edges"]] == [
            (f"d{demo.register}", f"d{demo.extract}", ["derived"])
        ]
        for node in drawn["nodes"]:
            assert "internal" in node["classes"]
        page.goto(f"/datasets/{demo.extract}")
        page.locator("#certificate").wait_for()
        assert f"#{demo.register}" in page.locator("#certificate").inner_text()
        shot(page, "dataset")
        page.goto("/catalog?q=extract")
        assert page.locator("#catalog tbody tr[data-dataset]").count() == 1
        shot(page, "catalog")


def test_clicking_an_edge_shows_its_records_with_verified_inclusion_proofs(
    console: Console, browser: Browser, traffic: Traffic, demo: Demo
) -> None:
    with signed_in(browser, console, traffic) as page:
        graph(page, f"/flow?until={quote(demo.done_at)}")
        box = page.locator("#graph").bounding_box()
        assert box is not None
        middle = page.evaluate("() => window.drlGraph.edges()[0].renderedMidpoint()")
        page.mouse.click(box["x"] + middle["x"], box["y"] + middle["y"])
        panel = page.locator("#panel[data-state=loaded]")
        panel.wait_for()
        records = panel.locator("li.record")
        actions = [r.split()[1] for r in records.all_inner_texts()]
        assert actions == ["request", "grant", "fetch", "receipt"]
        for i in range(records.count()):
            assert records.nth(i).get_attribute("data-signature") == "ok"
            assert records.nth(i).get_attribute("data-inclusion") == "ok"
        shot(page, "flow-edge")
        # the same record on its own page: re-checked here, against the kept checkpoint
        records.first.locator("a").click()
        page.locator("#inclusion").wait_for()
        assert page.locator("#inclusion").get_attribute("class") == "good"
        assert page.locator("#signature").get_attribute("class") == "good"
        shot(page, "record")


def test_a_fetch_after_revocation_raises_a_warning_that_links_to_its_records(
    console: Console, browser: Browser, traffic: Traffic, demo: Demo, broker: RunningBroker,
    tmp_path: Path,
) -> None:  # fmt: skip
    with member_client(broker, "office") as owner:
        owner.revoke(demo.grant)
    with member_client(broker, "coop") as consumer, pytest.raises(LedgerError) as refused:
        consumer.fetch(demo.register, tmp_path / "again.csv")
    assert refused.value.code == "access_ledger_grant_revoked"
    with signed_in(browser, console, traffic) as page:
        box = page.locator("#verification")
        runs = int(box.get_attribute("data-runs") or 1)
        page.locator("#verify-now").click()
        page.locator(f"#verification[data-state=done][data-runs='{runs + 1}']").wait_for()
        assert page.locator("#verify-status").inner_text().startswith("ok")
        shot(page, "overview-verified")
        page.goto("/warnings")
        warning = page.locator("li.warning[data-rule=fetch-after-revocation]")
        warning.wait_for()
        assert "Harbour Solar Cooperative" in warning.locator(".message").inner_text()
        shot(page, "warnings")
        warning.locator("a.evidence").click()
        page.locator("#records-filter").wait_for()
        rows = page.locator("#timeline tbody tr[data-seq]")
        assert rows.count() >= 1
        assert "refused" in rows.last.inner_text()
        assert "access_ledger_grant_revoked" in rows.last.inner_text()
        shot(page, "timeline-evidence")
        drawn = graph(page, "/flow")
        assert drawn["edges"][0]["classes"] == ["revoked", "attempted"]
        assert drawn["edges"][0]["data"]["refused"] == 1
        assert drawn["edges"][0]["data"]["uses_text"] == "1/3"
        shot(page, "flow-revoked")
        page.goto("/timeline")
        page.locator("#timeline").wait_for()
        shot(page, "timeline")


def test_a_dataset_page_shows_its_versions_quality_score_and_issues(
    console: Console, browser: Browser, traffic: Traffic, broker: RunningBroker, tmp_path: Path
) -> None:
    source = tmp_path / "stock.csv"
    source.write_text("ward,dwellings\nharbour,412\nquay,97\n")
    schema = {"fields": [{"name": "ward"}, {"name": "dwellings", "type": "integer"}]}
    with member_client(broker, "office") as owner:
        first = owner.register(
            source, title="Dwelling stock", schema=schema,
            quality=validate_file(source, schema).summary(),
        )  # fmt: skip
    with member_client(broker, "coop") as consumer:
        request = consumer.request_access(first.id, purpose="housing survey", days=5, uses=1)
    with member_client(broker, "office") as owner:
        owner.approve(request.id)
    with member_client(broker, "coop") as consumer:
        consumer.fetch(first.id, tmp_path / "stock-received.csv")
        issue = consumer.report_issue(first.id, fields="dwellings", problem="quay undercounted")
    source.write_text("ward,dwellings\nharbour,412\nquay,131\n")
    with member_client(broker, "office") as owner:
        second = owner.register(
            source, title="Dwelling stock", schema=schema, previous_version=first.id,
            quality=validate_file(source, schema).summary(),
        )  # fmt: skip
    with signed_in(browser, console, traffic) as page:
        # The versions come from the records verified here: verify what happened since.
        runs = int(page.locator("#verification").get_attribute("data-runs") or 1)
        page.locator("#verify-now").click()
        page.locator(f"#verification[data-state=done][data-runs='{runs + 1}']").wait_for()
        page.goto(f"/datasets/{first.id}")
        page.locator("#versions").wait_for()
        versions = page.locator("#versions li")
        assert [versions.nth(i).inner_text().split()[0] for i in range(versions.count())] == [
            f"#{first.id}",
            f"#{second.id}",
        ]
        # A recent open issue costs nothing yet (docs/standards.md): validation 1, kept promise.
        assert "100 / 100" in page.locator("#quality").inner_text()
        assert page.locator("#issues").inner_text() == f"#{issue.id} open: quay undercounted"
        shot(page, "dataset-quality")


def test_a_department_sees_its_flows_as_the_broker_reports_them(
    broker: RunningBroker, demo: Demo
) -> None:
    with running_console(broker, "office") as office, office.client() as c:
        check = c.get("/data/verify").json()["job"]["result"]
        assert check["kind"] == "own"  # its head and the proofs of its own actions
        assert check["ok"], check["problems"]
        assert check["proofs"] >= 3  # two registrations and a grant, at least
        drawn = c.get("/data/flow", params={"until": demo.done_at}).json()
        assert drawn["verified"] is False  # the broker's trace: not the whole log, not verified
        assert [(e["data"]["source"], e["data"]["target"]) for e in drawn["edges"]] == [
            (demo.department, demo.enterprise)
        ]
        assert drawn["edges"][0]["data"]["uses_text"] == "1/3"
        grant = next(
            r for r in c.get("/data/timeline", params={"action": "grant"}).json()["records"]
        )
        mine = c.get(f"/data/records/{grant['seq']}").json()
        assert mine["signature"]["ok"]
        assert mine["inclusion"]["ok"]  # its own action, proven in a signed head
        fetch = next(
            r for r in c.get("/data/timeline", params={"action": "fetch"}).json()["records"]
        )
        theirs = c.get(f"/data/records/{fetch['seq']}")
        assert theirs.status_code == 403  # the enterprise's record is not the department's to read
        warnings = c.get("/data/warnings").json()
        assert warnings["available"] is False
        assert c.get("/").status_code == 200
        assert c.get("/flow").status_code == 200


def test_nothing_was_loaded_from_outside(
    console: Console, browser: Browser, traffic: Traffic
) -> None:
    # A positive control first: a request to another origin is seen, and aborted.
    control = Traffic(origin=console.origin)
    with signed_in(browser, console, control) as page, pytest.raises(PlaywrightError):
        page.goto("http://cdn.example.org/x.js")
    assert control.foreign == ["http://cdn.example.org/x.js"]
    # Then every page this module opened: nothing but the console itself.
    with signed_in(browser, console, traffic) as page:
        for path in ("/", "/flow", "/lineage", "/timeline", "/warnings", "/catalog"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
    assert traffic.seen, "the pages made no requests at all"
    assert f"{console.origin}/static/vendor/cytoscape.min.js" in traffic.seen
    assert traffic.foreign == [], f"requests left the console: {traffic.foreign}"
    assert traffic.errors == [], f"page errors: {traffic.errors}"
