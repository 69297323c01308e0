"""RFC 6962 Merkle trees: hashing, the tree over a node store, inclusion and consistency proofs."""
