"""Member-side audit of a broker: verify its log against the chain, trace from what was verified.

Runs on the member's (or regulator's) machine, from raw material only: the log's records and
signed checkpoints (:class:`~ledger.audit.sources.LogSource`), and the chain read through a node
the member chose (:class:`~ledger.audit.sources.ChainSource`). Imports the protocol, the Merkle
tree and the core only: never the broker's store, services or web stack.

- :func:`~ledger.audit.verifier.verify` — incremental verification from a kept checkpoint
- :mod:`ledger.audit.trace` — dataset and member traces from the verified records
- :func:`~ledger.audit.inclusion.check_inclusion`, :class:`~ledger.audit.inclusion.ProofKeeper`
  — the SDK's check that a signed action is in a signed head, and the proofs it keeps
- :data:`~ledger.audit.links.LINKS` — which chain event each signed action causes
"""

from __future__ import annotations

from ledger.audit.inclusion import KeptProof, ProofKeeper, check_inclusion
from ledger.audit.links import LINKS, Link
from ledger.audit.sources import PAGE_SIZE, ChainEvent, ChainSource, LogSource
from ledger.audit.state import AuditState, Evidence
from ledger.audit.trace import DatasetTrace, MemberTrace, TraceEntry, dataset_trace, member_trace
from ledger.audit.verifier import AuditReport, Problem, Progress, verify

__all__ = [
    "LINKS",
    "PAGE_SIZE",
    "AuditReport",
    "AuditState",
    "ChainEvent",
    "ChainSource",
    "DatasetTrace",
    "Evidence",
    "KeptProof",
    "Link",
    "LogSource",
    "MemberTrace",
    "Problem",
    "Progress",
    "ProofKeeper",
    "TraceEntry",
    "check_inclusion",
    "dataset_trace",
    "member_trace",
    "verify",
]
