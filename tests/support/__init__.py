"""Shared test support: fixtures (loaded through pytest_plugins), broker harness, helpers."""
