"""A dataset's trace as W3C PROV, so that other provenance tools can read the trail.

Built on the member's machine from records it verified itself (``ledger.audit`` over its
audit state, as ``drl trace`` is): nothing here is the broker's word beyond what the trace
already marks as such (``drl:datasetFrom "context"``). ``drl trace ID --prov FILE`` writes the
document as PROV-JSON through the ``prov`` package.

The mapping (docs/standards.md, "W3C PROV export", has the table):

- the dataset, its parents, its previous version and its derivatives are ``prov:Entity``
  (``drl:Dataset``: content hash, classification, metadata hash, as registered);
- every member named is a ``prov:Agent`` of type ``prov:Organization`` (``drl:kind`` and its
  name when its onboarding record was verified);
- every signed record about the dataset, and the registrations of its relatives, is a
  ``prov:Activity`` at the record's time, ``wasAssociatedWith`` its signer, carrying the log
  sequence number, the signer, the chain transaction and the chain status (``drl:`` terms) so a
  reader can go back to the signed record; the signed message's meaningful members follow;
- lineage: ``wasDerivedFrom`` a parent, ``prov:Revision`` of a previous version (each through
  the registration that declared it), ``wasGeneratedBy`` the registration, ``used`` by a fetch,
  ``wasAttributedTo`` the owner;
- the signed checkpoint the records were verified against is a ``drl:Checkpoint`` entity.

Identifiers live under the deployment's log origin, so two deployments never share one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prov.model import (
    PROV,
    Namespace,
    ProvActivity,
    ProvAgent,
    ProvDocument,
    ProvEntity,
    ProvRelation,
)

from ledger.audit import AuditState, DatasetTrace, TraceEntry, dataset_trace
from ledger.audit.records import parse_leaf
from ledger.audit.state import LeafRow
from ledger.protocol.actions import ACTIONS
from ledger.protocol.checkpoint import parse_checkpoint
from ledger.types import CLASSIFICATIONS, kind_name

#: The vocabulary of this export (``drl:``): a name, not a page to fetch.
VOCABULARY: Final = "https://w3id.org/data-rights-ledger/ns#"
#: Where the identifiers of one deployment's datasets, members and records live.
INSTANCES: Final = "https://w3id.org/data-rights-ledger/log/"
#: Signed members that only protect against replay (or name the dataset, already linked).
_QUIET: Final = frozenset({"nonce", "deadline", "fetchNonce", "datasetId"})
_XSD_INT_MAX: Final = 2**31 - 1


@dataclass(frozen=True)
class ProvSummary:
    """How many of each kind of PROV record a document holds."""

    entities: int
    agents: int
    activities: int
    relations: int


def dataset_document(
    state: AuditState, dataset_id: int, *, trace: DatasetTrace | None = None
) -> ProvDocument:
    """The PROV document of ``dataset_id`` from the verified records in ``state``.

    ``trace`` is the dataset's trace if the caller has it already. NotFound
    ``dataset_not_found`` if no verified record names the dataset.
    """
    if trace is None or trace.dataset_id != dataset_id:
        trace = dataset_trace(state, dataset_id)
    registrations = {
        row.dataset_id: _entry(row)
        for row in state.leaf_rows(actions=["register"])
        if row.dataset_id is not None
    }
    onboards = {}
    for row in state.leaf_rows(actions=["onboard"]):
        entry = _entry(row)
        member = entry.detail.get("member")
        if isinstance(member, str):
            onboards[member.lower()] = entry
    return build_document(trace, registrations=registrations, onboards=onboards)


def build_document(
    trace: DatasetTrace,
    *,
    registrations: Mapping[int, TraceEntry],
    onboards: Mapping[str, TraceEntry],
) -> ProvDocument:
    """The PROV document of a verified dataset trace.

    ``registrations`` are verified registration records by dataset id (those of the dataset's
    relatives are used); ``onboards`` verified onboarding records by member address
    (lower case), which give each agent its kind and name.
    """
    if trace.checkpoint is None:
        raise ValueError("a trace without a verified checkpoint has no records to export")
    origin = parse_checkpoint(trace.checkpoint).origin
    builder = _Builder(ProvDocument(), origin, onboards)
    doc = builder.doc

    relatives = [*trace.parents, *trace.derived]
    if trace.previous_version is not None:
        relatives.append(trace.previous_version)
    own = trace.registration
    builder.dataset(
        trace.dataset_id,
        content_hash=trace.content_hash,
        classification=trace.classification,
        metadata_hash=own.detail.get("metadataHash") if own else None,
    )
    for relative in dict.fromkeys(relatives):
        reg = registrations.get(relative)
        builder.dataset(
            relative,
            content_hash=reg.detail.get("contentHash") if reg else None,
            classification=reg.detail.get("classification") if reg else None,
            metadata_hash=reg.detail.get("metadataHash") if reg else None,
        )
        if reg is not None:
            builder.registration(reg, relative, owner=reg.actor)
    if trace.owner is not None:
        doc.wasAttributedTo(builder.dataset_id(trace.dataset_id), builder.agent(trace.owner))

    for entry in trace.flows:
        if entry.action == "register":
            builder.registration(entry, trace.dataset_id, owner=None)
            continue
        activity = builder.activity(entry)
        if entry.action == "fetch":
            doc.used(activity, builder.dataset_id(trace.dataset_id), entry.at)

    note = parse_checkpoint(trace.checkpoint)
    doc.entity(
        builder.ns["checkpoint"][str(note.size)],
        {
            PROV["type"]: builder.drl["Checkpoint"],
            builder.drl["treeSize"]: note.size,
            builder.drl["rootHash"]: "0x" + note.root.hex(),
            builder.drl["origin"]: note.origin,
            builder.drl["note"]: trace.checkpoint,
        },
    )
    return doc


def summary(doc: ProvDocument) -> ProvSummary:
    records = doc.get_records()
    return ProvSummary(
        entities=sum(isinstance(r, ProvEntity) for r in records),
        agents=sum(isinstance(r, ProvAgent) for r in records),
        activities=sum(isinstance(r, ProvActivity) for r in records),
        relations=sum(isinstance(r, ProvRelation) for r in records),
    )


def _entry(row: LeafRow) -> TraceEntry:
    return TraceEntry(
        seq=row.seq,
        at=row.at,
        action=row.action,
        actor=row.actor,
        dataset_id=row.dataset_id,
        dataset_from=row.dataset_from,
        detail=dict(parse_leaf(row.leaf).signed.message),
        chain=row.chain,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
    )


class _Builder:
    """One document's namespaces, and each entity, agent and activity added once."""

    def __init__(self, doc: ProvDocument, origin: str, onboards: Mapping[str, TraceEntry]) -> None:
        self.doc = doc
        self.onboards = onboards
        self.drl = doc.add_namespace("drl", VOCABULARY)
        # origin is "DataRightsLedger/<chainId>/<FlowLog>": the deployment's log.
        base = INSTANCES + origin.split("/", 1)[-1] + "/"
        self.ns: dict[str, Namespace] = {
            name: doc.add_namespace(name, f"{base}{name}/")
            for name in ("dataset", "member", "record", "checkpoint")
        }
        self._agents: set[str] = set()
        self._datasets: set[int] = set()
        self._activities: set[int] = set()

    def dataset_id(self, dataset_id: int) -> Any:
        return self.ns["dataset"][str(dataset_id)]

    def dataset(
        self,
        dataset_id: int,
        *,
        content_hash: Any,
        classification: Any,
        metadata_hash: Any,
    ) -> None:
        if dataset_id in self._datasets:
            return
        self._datasets.add(dataset_id)
        attributes: dict[Any, Any] = {
            PROV["type"]: self.drl["Dataset"],
            PROV["label"]: f"dataset {dataset_id}",
            self.drl["datasetId"]: dataset_id,
        }
        if isinstance(content_hash, str):
            attributes[self.drl["contentHash"]] = content_hash
        if isinstance(classification, int) and 0 <= classification < len(CLASSIFICATIONS):
            attributes[self.drl["classification"]] = CLASSIFICATIONS[classification]
        if isinstance(metadata_hash, str):
            attributes[self.drl["metadataHash"]] = metadata_hash
        self.doc.entity(self.dataset_id(dataset_id), attributes)

    def agent(self, address: str) -> Any:
        """The agent of a member (added on first use); returns its identifier."""
        identifier = self.ns["member"][address]
        if address.lower() in self._agents:
            return identifier
        self._agents.add(address.lower())
        attributes: dict[Any, Any] = {
            PROV["type"]: PROV["Organization"],
            self.drl["address"]: address,
        }
        onboard = self.onboards.get(address.lower())
        if onboard is not None:
            kind = onboard.detail.get("kind")
            if isinstance(kind, int) and kind_name(kind) is not None:
                attributes[self.drl["kind"]] = kind_name(kind)
            name = onboard.detail.get("name")
            if isinstance(name, str):
                attributes[PROV["label"]] = name
        self.doc.agent(identifier, attributes)
        return identifier

    def activity(self, entry: TraceEntry) -> Any:
        """The activity of a signed record, associated with its signer; returns its id."""
        identifier = self.ns["record"][str(entry.seq)]
        if entry.seq in self._activities:
            return identifier
        self._activities.add(entry.seq)
        drl = self.drl
        spec = ACTIONS.get(entry.action)
        attributes: dict[Any, Any] = {
            PROV["type"]: drl[spec.primary if spec else entry.action],
            PROV["label"]: entry.action,
            drl["action"]: entry.action,
            drl["seq"]: entry.seq,
            drl["signer"]: entry.actor,
            drl["chainStatus"]: entry.chain,
        }
        if entry.dataset_id is not None:
            attributes[drl["dataset"]] = self.dataset_id(entry.dataset_id)
        if entry.dataset_from is not None:
            attributes[drl["datasetFrom"]] = entry.dataset_from
        if entry.tx_hash is not None:
            attributes[drl["txHash"]] = entry.tx_hash
        if entry.block_number is not None:
            attributes[drl["blockNumber"]] = entry.block_number
        addresses = {f["name"] for f in spec.fields if f["type"] == "address"} if spec else set()
        for key, value in entry.detail.items():
            if key in _QUIET or drl[key] in attributes:
                continue
            if key in addresses and isinstance(value, str):
                attributes[drl[key]] = self.agent(value)
            else:
                attributes[drl[key]] = _literal(value)
        activity = self.doc.activity(identifier, entry.at, entry.at, attributes)
        self.doc.wasAssociatedWith(activity, self.agent(entry.actor))
        return identifier

    def registration(self, entry: TraceEntry, dataset_id: int, *, owner: str | None) -> None:
        """A registration: it generated the dataset, which derives from what it declared."""
        activity = self.activity(entry)
        dataset = self.dataset_id(dataset_id)
        self.doc.wasGeneratedBy(dataset, activity, entry.at)
        if owner is not None:
            self.doc.wasAttributedTo(dataset, self.agent(owner))
        for parent in _ints(entry.detail.get("parents")):
            if parent in self._datasets:
                self.doc.wasDerivedFrom(dataset, self.dataset_id(parent), activity)
        previous = entry.detail.get("previousVersion")
        if isinstance(previous, int) and previous in self._datasets:
            self.doc.revision(dataset, self.dataset_id(previous), activity)


def _ints(value: Any) -> Iterable[int]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _literal(value: Any) -> Any:
    """A signed value as a PROV literal: strings, small integers and booleans as they are."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int) and abs(value) <= _XSD_INT_MAX:
        return value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
