"""The flow log: an append-only RFC 6962 Merkle log of signed actions, anchored on chain."""
