"""Browser tests: Debian's chromium driven by Playwright against the running `drl` programs."""
