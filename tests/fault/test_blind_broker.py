"""The blind broker: after a whole exchange, nothing the broker side wrote (its database and
write-ahead log, its blob store, its chain file) holds any plaintext or any data key.

The walk registers two datasets -- one full of unique marker strings, sent the way the HTTP API
sends it (signed upload intent, then the ciphertext), and the building-permits sample -- grants
both, fetches and opens both, acknowledges, rates and anchors. The data keys are captured on
the owner's side by wrapping ``ledger.crypto.generate_data_key``. Then every byte under the
broker's root is searched for the plaintext's distinctive strings and for each key in every
usual text form; the same search is shown to find them when they are there.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import ledger.crypto
from ledger.client.member import MemberKeys, prepare_upload
from ledger.services import datasets
from ledger.services.anchoring import Anchorer
from ledger.store.models import Dataset
from tests.support import kit

MARKERS = ("ZEBRA-7731-MARKER", "Quillfeather Orchard 4417", "nightjar-8c1e-row-secret")


@dataclass
class Walk:
    broker: kit.Broker
    members: list[MemberKeys]
    client_dir: Path  # the members' side: plaintext, ciphertext before upload, deliveries
    data_keys: list[bytes]
    plaintexts: dict[str, bytes]  # name -> bytes registered
    received: dict[str, bytes]  # name -> bytes the grantee decrypted


def _marker_csv(path: Path) -> Path:
    lines = ["case_id,street,note"]
    lines += [
        f"{MARKERS[0]}-{i:04d},{MARKERS[1]} {i},{MARKERS[2]} {i * 7919 % 10007}" for i in range(400)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _register_via_intent(
    broker: kit.Broker, owner: MemberKeys, source: Path, *, workdir: Path, title: str
) -> Dataset:
    """What the API does: the signed registration first, the ciphertext after."""
    ledger = broker.ledger
    prepared = prepare_upload(
        owner,
        source,
        workdir=workdir,
        title=title,
        domains=ledger.domains,
        chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
    )
    intent = datasets.begin_upload(
        ledger,
        prepared.signed,
        metadata=prepared.metadata,
        owner_wrapped_key=prepared.owner_wrapped_key,
    )
    with prepared.ciphertext_path.open("rb") as fh:
        return datasets.complete_upload(ledger, intent.id, fh, uploader=owner.address)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("blind")
    client_dir = root / "members"
    client_dir.mkdir()
    broker = kit.make_broker(root / "broker")
    data_keys: list[bytes] = []
    real_generate = ledger.crypto.generate_data_key

    def generate_and_keep() -> bytes:
        key = real_generate()
        data_keys.append(key)
        return key

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger.crypto, "generate_data_key", generate_and_keep)
        office = kit.onboard(broker, "department", "District Planning Office")
        coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
        auditor = kit.onboard(broker, "regulator", "Data Protection Authority")
        marked = _register_via_intent(
            broker,
            office,
            _marker_csv(client_dir / "casework.csv"),
            workdir=client_dir,
            title="Casework register",
        )
        permits = kit.register(broker, office, kit.SAMPLE, workdir=client_dir)
    received: dict[str, bytes] = {}
    for name, dataset in (("casework", marked), ("permits", permits)):
        kit.approve(broker, office, kit.request(broker, coop, dataset.id))
        out = client_dir / f"received-{name}.csv"
        kit.receipt(broker, coop, kit.fetch_and_open(broker, coop, dataset.id, out))
        received[name] = out.read_bytes()
    kit.rate(broker, coop, permits.id, 5)
    Anchorer(broker.ledger.db, broker.ledger.chain).run_once()
    yield Walk(
        broker=broker,
        members=[office, coop, auditor],
        client_dir=client_dir,
        data_keys=data_keys,
        plaintexts={
            "casework": (client_dir / "casework.csv").read_bytes(),
            "permits": kit.SAMPLE.read_bytes(),
        },
        received=received,
    )
    broker.close()


# -- the search -------------------------------------------------------------------------------


def key_forms(key: bytes) -> dict[str, bytes]:
    """A secret as raw bytes and in every text form it could be written in."""
    b64 = base64.b64encode(key)
    urlsafe = base64.urlsafe_b64encode(key)
    return {
        "raw": key,
        "hex": key.hex().encode(),
        "HEX": key.hex().upper().encode(),
        "base64": b64.rstrip(b"="),
        "base64url": urlsafe.rstrip(b"="),
    }


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def find(paths: list[Path], needles: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Which needles occur in which files (whole files read as bytes, deleted pages too)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        data = path.read_bytes()
        for label, needle in needles.items():
            if needle in data:
                found.setdefault(label, []).append(path.name)
    return found


def plaintext_needles(walk: Walk) -> dict[str, bytes]:
    needles = {f"marker {m!r}": m.encode() for m in MARKERS}
    permits = walk.plaintexts["permits"].decode().splitlines()[1:]
    for row in (permits[0], permits[len(permits) // 2], permits[-1]):
        needles[f"permit {row.split(',')[0]}"] = row.split(",")[0].encode()
        needles[f"permit row {row[:13]}"] = row.encode()
    needles["permit street 107 Green Lane"] = b"107 Green Lane"
    casework = walk.plaintexts["casework"].decode().splitlines()
    needles["casework row"] = casework[200].encode()
    return needles


def key_needles(walk: Walk) -> dict[str, bytes]:
    return {
        f"data key {i} as {form}": value
        for i, key in enumerate(walk.data_keys)
        for form, value in key_forms(key).items()
    }


# -- the tests ---------------------------------------------------------------------------------


def test_the_walk_carried_the_plaintext_and_made_one_key_per_dataset(walk: Walk) -> None:
    assert walk.received == walk.plaintexts
    assert len(walk.data_keys) == 2
    assert len(set(walk.data_keys)) == 2
    for marker in MARKERS:
        assert walk.plaintexts["casework"].count(marker.encode()) == 400
    assert b"BP-2025-00034" in walk.plaintexts["permits"]


def test_the_search_covers_the_database_its_wal_the_blobs_and_the_chain(walk: Walk) -> None:
    root = walk.broker.root
    names = {p.relative_to(root).as_posix() for p in files_under(root)}
    assert {"broker.db", "chain.sqlite"} <= names
    assert any(n.startswith("broker.db-wal") for n in names), names
    blobs = [n for n in names if n.startswith("blobs/") and "/.tmp/" not in f"/{n}"]
    assert len(blobs) == 2, names
    ciphertext = sum((root / n).stat().st_size for n in blobs)
    assert ciphertext > len(walk.plaintexts["permits"])


def test_the_search_finds_what_is_there(walk: Walk, tmp_path: Path) -> None:
    """The control: the same routine finds every needle in files that do hold them."""
    plain, keys = plaintext_needles(walk), key_needles(walk)
    planted = tmp_path / "planted.bin"
    planted.write_bytes(b"\x00junk\x01".join([*plain.values(), *keys.values()]))
    found = find([planted], {**plain, **keys})
    assert set(found) == set(plain) | set(keys)
    # And on the members' side, where the plaintext does live, the markers are found too.
    members_side = find(files_under(walk.client_dir), plain)
    assert set(members_side) == set(plain)


def test_no_broker_file_holds_the_plaintext(walk: Walk) -> None:
    found = find(files_under(walk.broker.root), plaintext_needles(walk))
    assert found == {}, f"plaintext on the broker: {found}"


def test_no_broker_file_holds_a_data_key(walk: Walk) -> None:
    found = find(files_under(walk.broker.root), key_needles(walk))
    assert found == {}, f"data keys on the broker: {found}"


def test_no_broker_file_holds_a_members_private_key(walk: Walk) -> None:
    secrets = {
        f"{kind} key of member {i} as {form}": value
        for i, member in enumerate(walk.members)
        for kind, key in (("HPKE", member.hpke.to_bytes()), ("signing", bytes(member.account.key)))
        for form, value in key_forms(key).items()
    }
    found = find(files_under(walk.broker.root), secrets)
    assert found == {}, f"member secrets on the broker: {found}"


def test_a_checkpointed_snapshot_of_the_database_holds_neither(walk: Walk, tmp_path: Path) -> None:
    """The same, for the database file alone once the WAL is folded in (a backup copy)."""
    snapshot = tmp_path / "snapshot.db"
    source = sqlite3.connect(walk.broker.root / "broker.db")
    target = sqlite3.connect(snapshot)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    assert snapshot.stat().st_size > 0
    found = find([snapshot], {**plaintext_needles(walk), **key_needles(walk)})
    assert found == {}, found
