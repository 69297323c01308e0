"""Chain layer: contract artifacts, backends (embedded py-evm, JSON-RPC) and the typed client."""
