"""Use cases of the broker: members, datasets, access, exchange, the flow log, anchoring,
trace and verify, and the one authorization policy (``policy``)."""
