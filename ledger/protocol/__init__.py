"""The wire protocol both sides share: EIP-712 actions, canonical JSON, documents, request
signing, wire models and error codes (docs/protocol.md)."""
