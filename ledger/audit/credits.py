"""The quality a minted credit must carry, recomputed from the records verified here.

``SharingCredits`` weighs each credit by the quality score the broker passes with the receipt,
and its ``CreditsMinted`` event shows that score. The score is a function of signed, logged
records only (``ledger.scoring.credit_quality``: the dataset's records before the receipt and
its next version's registration, as of the receipt's time), so the verifier recomputes it
from its own state and a broker that inflates (or deflates) an owner's credits is caught.
"""

from __future__ import annotations

from typing import Any

from ledger.audit.records import parse_leaf
from ledger.audit.state import AuditState
from ledger.scoring import SCORED_ACTIONS, credit_quality


class CreditQualities:
    """Expected qualities for one run; the next-version index is built once, on first use."""

    def __init__(self, state: AuditState) -> None:
        self.state = state
        self._newer: dict[int, list[bytes]] | None = None
        self._leaves: dict[int, list[bytes]] = {}  # by dataset: read once per run

    def expected(self, dataset_id: int, receipt: bytes) -> int:
        """The score the receipt's credit must carry (``receipt`` is its leaf)."""
        return credit_quality(self.leaves(dataset_id), dataset_id, receipt=receipt)

    def leaves(self, dataset_id: int) -> list[bytes]:
        """The verified records ``dataset_id``'s score reads (``ledger.scoring.score_of``): its
        own scored ones and its next version's registration."""
        if dataset_id not in self._leaves:
            rows = self.state.leaf_rows(dataset_id=dataset_id, actions=SCORED_ACTIONS)
            own = [row.leaf for row in rows]
            self._leaves[dataset_id] = own + self._next_versions().get(dataset_id, [])
        return self._leaves[dataset_id]

    def _next_versions(self) -> dict[int, list[bytes]]:
        if self._newer is None:
            self._newer = {}
            for row in self.state.leaf_rows(actions=["register"]):
                previous: Any = parse_leaf(row.leaf).signed.message.get("previousVersion")
                if isinstance(previous, int) and previous and previous != row.dataset_id:
                    self._newer.setdefault(previous, []).append(row.leaf)
        return self._newer
