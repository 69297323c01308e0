"""Unit tests of the protocol itself: vectors, canonical JSON, the protocol document."""
