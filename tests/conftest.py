"""The suite's fixtures live in tests/support and are loaded here as plugins."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.chain", "tests.support.pg"]

#: The longest modules (measured with --durations), started first: with one module per worker
#: at a time (--dist loadfile), a long module picked up last would run alone at the end.
#: scripts/test passes --no-loadscope-reorder, or xdist would order modules by test count.
LONGEST_FIRST = (
    "tests/adversary/test_forged_answers.py",
    "tests/http/test_http_exchange.py",
    "tests/scaleout/test_cluster.py",
    "tests/adversary/test_broker_key.py",
    "tests/http/test_serve_workers.py",
    "tests/http/test_http_data_quality.py",
    "tests/browser/test_console.py",
    "tests/fault/test_crash_recovery.py",
    "tests/http/test_backup_restore.py",
    "tests/http/test_openapi_fuzz.py",
    "tests/http/test_cli_exit_codes.py",
    "tests/http/test_cli_chain.py",
    "tests/http/test_http_warnings.py",
    "tests/http/test_slow_clients.py",
    "tests/http/test_http_bad_input.py",
    "tests/contracts/test_artifacts.py",
    "tests/http/test_http_authz.py",
    "tests/http/test_cli_errors.py",
)


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, which orders the rest
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
