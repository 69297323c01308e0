"""The ``drl`` command line.

Every failure the user can cause ends in one line ``error [code]: message`` on stderr and a
non-zero exit; tracebacks are for bugs only. ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import sys

import typer
from typer._click.exceptions import ClickException

from ledger.cli import backup, commands
from ledger.cli import warnings as warnings_cli
from ledger.cli.chain import chain_app
from ledger.cli.common import err, report
from ledger.cli.console import console
from ledger.cli.serve import serve
from ledger.errors import LedgerError

app = typer.Typer(
    name="drl",
    help="Data Rights Ledger: register datasets, grant access, trace every flow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("serve")(serve)
app.add_typer(commands.member_app, name="member")
commands.admin_app.command("backup")(backup.admin_backup)
commands.admin_app.command("restore")(backup.admin_restore)
app.add_typer(commands.admin_app, name="admin")
app.add_typer(commands.dataset_app, name="dataset")
app.add_typer(commands.access_app, name="access")
app.add_typer(commands.issue_app, name="issue")
app.command("credits")(commands.credits)
app.command("trace")(commands.trace)
app.command("verify")(commands.verify)
app.command("warnings")(warnings_cli.warnings)
app.command("console")(console)
app.add_typer(chain_app, name="chain")


def main() -> None:
    """Entry point: run the app, turning library and usage errors into one clean line."""
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting with it.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LedgerError as exc:
        report(exc)
        sys.exit(1)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted", markup=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
