"""Write docs/authorization.md from the authorization matrix in tests/support/authz_matrix.py.

    .venv/bin/python scripts/authz_table.py           # regenerate the page
    .venv/bin/python scripts/authz_table.py --check   # exit 1 if the page is out of date

``tests/http/test_http_authz.py`` holds the running broker to the same table and fails when the
page is stale, so the README's table is always the tested one.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.authz_matrix import markdown  # noqa: E402

PAGE = ROOT / "docs" / "authorization.md"


def main(argv: list[str]) -> int:
    text = markdown()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            sys.stderr.write(f"{PAGE.relative_to(ROOT)} is out of date: run {argv[0]}\n")
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
