"""Tests of Data Rights Ledger."""
