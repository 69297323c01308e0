"""Service-level tests: use cases over a real store and chain, in process."""
