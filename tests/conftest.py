"""The suite's fixtures live in tests/support and are loaded here as plugins."""

pytest_plugins = ["tests.support.chain", "tests.support.pg"]
