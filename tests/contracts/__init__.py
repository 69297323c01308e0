"""Contract tests: one module per contract or capability, run on both chain backends."""
