"""Fault tests: tampering, blind-broker search, crashes, concurrency, interruptions."""
