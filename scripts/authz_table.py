"""Write docs/authorization.md and the README's table from tests/support/authz_matrix.py.

    .venv/bin/python scripts/authz_table.py           # regenerate the page and the README table
    .venv/bin/python scripts/authz_table.py --check   # exit 1 if either is out of date

``tests/http/test_http_authz.py`` holds the running broker to the same table and fails when the
page or the README is stale, so the published table is always the tested one.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.authz_matrix import in_readme, markdown  # noqa: E402

PAGE = ROOT / "docs" / "authorization.md"
README = ROOT / "README.md"


def main(argv: list[str]) -> int:
    readme = README.read_text(encoding="utf-8")
    wanted = {PAGE: markdown(), README: in_readme(readme)}
    if "--check" in argv:
        stale = [
            path
            for path, text in wanted.items()
            if (path.read_text(encoding="utf-8") if path.exists() else "") != text
        ]
        for path in stale:
            sys.stderr.write(f"{path.relative_to(ROOT)} is out of date: run {argv[0]}\n")
        return 1 if stale else 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    for path, text in wanted.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
