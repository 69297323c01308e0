"""`drl console`: the member's web console on 127.0.0.1 (``ledger.console``).

Kept apart from ``ledger.cli.commands``: the member-side contract keeps the web stack out of
those, and the console is the one member tool that serves HTTP (to this machine only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import AsOpt, client, err, out, settings


def console(
    as_: AsOpt = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")
    ] = 0,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the URL; open no browser.")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option(
            help="Early-warning rules file (TOML); else DRL_WARNING_RULES, else the packaged rules."
        ),
    ] = None,
) -> None:
    """Open your web console: flows, lineage, timeline, warnings, verified on this machine.

    Serves on 127.0.0.1 only, to whoever holds the link it prints (a new token at each start);
    your keys stay in this process. Ctrl-C stops it.
    """
    from ledger.console.server import bind, check_assets, serve
    from ledger.console.session import ConsoleSession

    check_assets()
    sock = bind(port)  # a taken port fails before any key is unlocked
    with sock, client(as_) as c:
        handle = as_ or os.environ.get("DRL_AS") or "operator"
        session = ConsoleSession.open(c, handle=handle, rules=rules or settings().warning_rules)
        session.job.start()  # verify at once: the pages draw from what was verified

        def announce(url: str) -> None:
            out.print(f"console for {session.name} ({session.role}) at {url}", highlight=False)
            sys.stdout.flush()
            err.print(
                "open the link above in a browser on this machine; Ctrl-C stops", highlight=False
            )

        serve(session, sock=sock, open_browser=not no_browser, announce=announce)
    err.print("console stopped", highlight=False)
