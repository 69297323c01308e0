"""`drl console`: the member's own web console on 127.0.0.1, verifying on the member's machine.

Member side plus a local web server: it uses the SDK (``ledger.client``) and the member-side
audit (``ledger.audit``), starlette, uvicorn and Jinja2, and never the broker's store, services
or API (an import-linter contract says so).

- :mod:`ledger.console.security` — the gate: 127.0.0.1 only, this run's token, same origin
- :mod:`ledger.console.records` — verified records from the local audit state (SQL), and
  :mod:`ledger.console.reported` — the broker's trace for members who may not read the log
- :mod:`ledger.console.graphs` — flow and lineage graphs as cytoscape.js elements
- :mod:`ledger.console.session` — what every page shows; :mod:`ledger.console.verifyjob` —
  "Verify now" in a background thread
- :mod:`ledger.console.app` — pages and ``/data/*`` JSON; :mod:`ledger.console.server` — serving
"""
