"""The console's web app: server-rendered pages, JSON data endpoints, the gate in front.

Pages (Jinja2) and the data they draw (JSON, also what the trace benchmark times):

========================  ==============================================================
``/``                     overview; "Verify now" posts ``/verify`` and polls ``/data/verify``
``/flow``                 flow graph ← ``/data/flow?dataset=ID | member=ADDR | since&until``
``/lineage``              lineage graph ← ``/data/lineage?dataset=ID``
``/timeline``             the log, paged ← ``/data/timeline?...&action=&after=&limit=``
``/warnings``             early warnings ← ``/data/warnings``
``/catalog``              search and filters; ``/datasets/{id}`` one dataset
``/records/{seq}``        one record, signature and inclusion proof ← ``/data/records/{seq}``
========================  ==============================================================

Every request passes :class:`~ledger.console.security.GateMiddleware` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ledger.console.security import Gate, GateMiddleware
from ledger.console.session import ConsoleSession, int_arg
from ledger.errors import Forbidden, InvalidInput, LedgerError, NotFound
from ledger.protocol.codes import status_for

HERE: Final = Path(__file__).resolve().parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"
#: The bundled graph library (``scripts/bootstrap`` copies it from node_modules).
GRAPH_ASSET: Final = STATIC / "vendor" / "cytoscape.min.js"
FILTERS: Final = ("dataset", "member", "since", "until", "action", "records")
ACTIONS: Final = (
    "onboard", "suspend", "reinstate", "rotate_key", "register", "reassign", "request", "grant",
    "approval", "deny", "revoke", "fetch", "receipt", "rate", "issue", "answer",
)  # fmt: skip

NAV: Final = (
    ("/", "Overview"),
    ("/flow", "Flows"),
    ("/lineage", "Lineage"),
    ("/timeline", "Timeline"),
    ("/warnings", "Warnings"),
    ("/catalog", "Catalog"),
)


def create_app(session: ConsoleSession, gate: Gate) -> GateMiddleware:
    """The console for ``session``, answering only through ``gate``."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        me = {"handle": session.handle, "role": session.role, "address": session.address}
        body = env.get_template(name).render(
            nav=NAV,
            path=request.url.path,
            me=me | {"name": session.name},
            verified=session.records.verified,
            **context,
        )
        return HTMLResponse(body, status_code=status)

    def refused(status: int, why: str) -> str:
        return env.get_template("refused.html").render(status=status, why=why)

    def failed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LedgerError)
        status = _status(exc)
        if request.url.path.startswith("/data/") or request.method == "POST":
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=status)
        return page(request, "error.html", status, code=exc.code, message=exc.message)

    def filters(request: Request) -> dict[str, str]:
        q = request.query_params
        return {k: q[k] for k in FILTERS if q.get(k)}

    def scoped(request: Request) -> Any:
        f = filters(request)
        return session.scope(
            dataset=f.get("dataset"),
            member=f.get("member"),
            since=f.get("since"),
            until=f.get("until"),
            actions=f.get("action"),
            records=f.get("records"),
        )

    def choices() -> dict[str, Any]:
        orgs = session.records.organisations()
        regs = session.records.registrations()
        return {
            "orgs": sorted(orgs.values(), key=lambda o: o.name),
            "regs": [regs[d] for d in sorted(regs)],
        }

    # -- pages -------------------------------------------------------------------------------

    def overview(request: Request) -> Response:
        return page(request, "overview.html", data=session.overview())

    def flow(request: Request) -> Response:
        f = filters(request)
        scoped(request)  # refuse bad filters on the page itself
        src = "/data/flow" + (f"?{urlencode(f)}" if f else "")
        return page(request, "flow.html", f=f, src=src, **choices())

    def lineage(request: Request) -> Response:
        f = filters(request)
        dataset = int_arg("dataset", f.get("dataset"))
        src = "/data/lineage" + (f"?dataset={dataset}" if dataset is not None else "")
        return page(request, "lineage.html", f=f, src=src, **choices())

    def timeline(request: Request) -> Response:
        f = filters(request)
        after = int_arg("after", request.query_params.get("after")) or -1
        data = session.timeline(scoped(request), after=after, limit=50)
        more = None
        if data["next_after"] is not None:
            more = "/timeline?" + urlencode(f | {"after": str(data["next_after"])})
        return page(
            request, "timeline.html", f=f, data=data, more=more, actions=ACTIONS, **choices()
        )

    def warnings(request: Request) -> Response:
        return page(request, "warnings.html", data=session.warnings())

    def catalog(request: Request) -> Response:
        q = request.query_params
        f = {k: q.get(k, "") for k in ("q", "classification", "owner", "theme", "min_quality")}
        data = session.catalog(
            q=f["q"],
            classification=f["classification"],
            owner=f["owner"],
            theme=f["theme"],
            min_quality=int_arg("min_quality", f["min_quality"]),
        )
        return page(request, "catalog.html", f=f, data=data)

    def dataset(request: Request) -> Response:
        return page(request, "dataset.html", data=session.dataset(request.path_params["id"]))

    def record(request: Request) -> Response:
        return page(request, "record.html", r=session.record(request.path_params["seq"]))

    # -- data --------------------------------------------------------------------------------

    def data_flow(request: Request) -> Response:
        return JSONResponse(session.flow(scoped(request)))

    def data_lineage(request: Request) -> Response:
        return JSONResponse(
            session.lineage(int_arg("dataset", request.query_params.get("dataset")))
        )

    def data_timeline(request: Request) -> Response:
        q = request.query_params
        after = int_arg("after", q.get("after"))
        limit = int_arg("limit", q.get("limit"))
        return JSONResponse(
            session.timeline(
                scoped(request), after=-1 if after is None else after, limit=limit or 50
            )
        )

    def data_warnings(request: Request) -> Response:
        return JSONResponse(session.warnings())

    def data_record(request: Request) -> Response:
        return JSONResponse(session.record(request.path_params["seq"]))

    def data_verify(request: Request) -> Response:
        return JSONResponse(session.verification())

    def data_overview(request: Request) -> Response:
        return JSONResponse(session.overview())

    def verify(request: Request) -> Response:
        started = session.job.start()
        return JSONResponse({"started": started, "job": session.job.status()}, status_code=202)

    app = Starlette(
        routes=[
            Route("/", overview),
            Route("/flow", flow),
            Route("/lineage", lineage),
            Route("/timeline", timeline),
            Route("/warnings", warnings),
            Route("/catalog", catalog),
            Route("/datasets/{id:int}", dataset),
            Route("/records/{seq:int}", record),
            Route("/verify", verify, methods=["POST"]),
            Route("/data/overview", data_overview),
            Route("/data/flow", data_flow),
            Route("/data/lineage", data_lineage),
            Route("/data/timeline", data_timeline),
            Route("/data/warnings", data_warnings),
            Route("/data/records/{seq:int}", data_record),
            Route("/data/verify", data_verify),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={LedgerError: failed},
    )
    return GateMiddleware(app, gate=gate, refused=refused)


def _status(exc: LedgerError) -> int:
    status = status_for(exc.code)
    if status is not None:
        return status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, Forbidden):
        return 403
    return 502
