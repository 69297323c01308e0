"""Attacks 2, 3 and 6 (and 1 through the chain relay): a broker that answers falsely, one whose
database or blobs were altered, and a second registration of the same content in other chunks.

A stand-in broker (``standin.py``) sits in front of the real one and rewrites chosen answers;
the real ``drl`` talks to it. The member's client must refuse what it cannot check against the
chain or its kept checkpoint (a one-line ``error [code]``, no output file, no receipt), and the
regulator's ``drl verify`` must compute its answer on its own machine and name what is wrong.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_abi import decode, encode
from web3 import Web3

from ledger import crypto
from ledger.chain.abi import artifact
from ledger.client import member as member_side
from ledger.client.sdk import BrokerClient
from ledger.errors import Conflict, LedgerError
from ledger.protocol.canonical import canonical
from ledger.protocol.checkpoint import origin_for
from ledger.protocol.documents import key_context
from tests.adversary.conftest import Member, Site
from tests.adversary.helpers import one_line_error, people, sample_csv
from tests.adversary.standin import Answer, ForgedLog, StandIn, stand_in

SMALL_CHUNKS = 64 * 1024
FORGED_ROWS = b"permit_id,ward,cost\nBP-FORGED-1,Nowhere,1\nBP-FORGED-2,Nowhere,2\n"


@dataclass
class Scene:
    standin: StandIn
    dataset_id: int
    content_hash: bytes
    source: Path


@pytest.fixture(scope="module")
def scene(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A dataset of the office granted to the coop (20 uses), and a stand-in broker."""
    people(site, ("office", "department"), ("coop", "enterprise"), ("auditor", "regulator"))
    source = sample_csv(tmp_path_factory.mktemp("forged") / "permits.csv", rows=400, tag="F")
    with site.sdk("office") as c:
        dataset = c.register(source, title="Building permits")
    with site.sdk("coop") as c:
        request = c.request_access(dataset.id, purpose="grid planning", days=30, uses=20)
    with site.sdk("office") as c:
        c.approve(request.id)
    with stand_in(site.url) as standin:
        yield Scene(standin, dataset.id, bytes.fromhex(dataset.content_hash[2:]), source)


def _deliveries(site: Site, consumer: str) -> int:
    with site.db() as db:
        (n,) = db.execute(
            "SELECT count(*) FROM deliveries WHERE consumer = ?", (consumer,)
        ).fetchone()
    return int(n)


def _forge_delivery(recipient: Member, *, header: str) -> Callable[[Answer], Answer]:
    """A delivery of FORGED_ROWS, sealed to the recipient's real key (the broker knows it).

    ``header="forged"``: the content-hash header names the forged rows' hash (the attack that
    fooled the old client). ``header="registered"``: the header tells the truth, the key is
    wrapped under the registered hash, and the plaintext is still the forged rows.
    """

    def rewrite(a: Answer) -> Answer:
        assert a.status == 200, a.body
        registered = bytes.fromhex(a.headers["x-drl-content-hash"][2:])
        dek = crypto.generate_data_key()
        sealed = io.BytesIO()
        result = crypto.encrypt(io.BytesIO(FORGED_ROWS), sealed, dek)
        named = result.content_hash if header == "forged" else registered
        public = bytes.fromhex(recipient.profile.encryption_key[2:])
        wrapped = crypto.wrap_key(
            dek,
            public,
            suite=recipient.profile.key_suite,
            info=key_context(named, recipient.address),
        )
        a.headers["x-drl-content-hash"] = "0x" + named.hex()
        a.headers["x-drl-wrapped-key"] = "0x" + wrapped.hex()
        a.headers["x-drl-ciphertext-sha256"] = "0x" + result.ciphertext_sha256.hex()
        a.body = sealed.getvalue()
        return a

    return rewrite


def _fetch_refused(site: Site, via: str, url: str, dataset_id: int, out: Path) -> str:
    """The coop fetches through ``drl`` or the SDK and is refused; returns the error code."""
    if via == "cli":
        run = site.drl("coop", "dataset", "fetch", str(dataset_id), "-o", str(out), url=url)
        line = one_line_error(run, run.stderr.partition("error [")[2].partition("]")[0])
        return line.partition("[")[2].partition("]")[0]
    with site.sdk("coop", url=url) as c, pytest.raises(LedgerError) as refused:
        c.fetch(dataset_id, out)
    return refused.value.code


@pytest.mark.parametrize(
    ("header", "via", "code"),
    [("forged", "cli", "content_hash_mismatch"), ("registered", "sdk", "integrity_error")],
)
def test_forged_delivery_is_refused(
    site: Site, scene: Scene, tmp_path: Path, header: str, via: str, code: str
) -> None:
    """Attack 2: the stand-in replaces the delivery with forged rows sealed to the grantee's key,
    naming their hash in X-DRL-Content-Hash (or the registered hash, with forged plaintext):
    the fetch checks against the hash registered on chain and refuses, writing no file and
    signing no receipt."""
    coop = site.members["coop"]
    scene.standin.clear()
    scene.standin.on("POST", r"/v1/datasets/\d+/fetch", _forge_delivery(coop, header=header))
    before = _deliveries(site, coop.address)
    out = tmp_path / "delivery.csv"

    assert _fetch_refused(site, via, scene.standin.url, scene.dataset_id, out) == code

    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial file either
    assert scene.standin.asked("POST", r"/v1/datasets/\d+/fetch")  # the delivery was served
    assert scene.standin.asked("POST", r"/v1/receipts") == []
    assert _deliveries(site, coop.address) == before


def _forged_metadata(a: Answer) -> Answer:
    """The dataset's metadata as served, with a chunk size its owner never signed."""
    answer = a.json()
    answer["metadata"] = {**answer["metadata"], "chunk_size": 16 * 1024 * 1024}
    return a.with_json(answer)


def test_forged_metadata_is_refused_before_the_download(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 2 (hostile chunking): the stand-in serves the dataset's metadata with another
    chunk size, to make the grantee accept a delivery in huge chunks. The metadata must hash to
    the ``metadataHash`` on chain: it does not, so the fetch is refused (``metadata_mismatch``)
    before a use is spent: no file, no receipt."""
    coop = site.members["coop"]
    scene.standin.clear()
    scene.standin.on("GET", r"/v1/datasets/\d+$", _forged_metadata)
    before = _deliveries(site, coop.address)
    out = tmp_path / "delivery.csv"

    assert _fetch_refused(site, "sdk", scene.standin.url, scene.dataset_id, out) == (
        "metadata_mismatch"
    )

    assert not out.exists()
    assert scene.standin.asked("POST", r"/v1/datasets/\d+/fetch") == []
    assert scene.standin.asked("POST", r"/v1/receipts") == []
    assert _deliveries(site, coop.address) == before


def _flip_one_byte(a: Answer) -> Answer:
    assert a.status == 200, a.body
    body = bytearray(a.body)
    body[len(body) // 2] ^= 0x01
    a.body = bytes(body)
    return a


@pytest.mark.parametrize(
    ("where", "via", "code"),
    [("blob store", "sdk", "broker_unreachable"), ("stand-in", "cli", "integrity_error")],
)
def test_tampered_ciphertext_is_refused(
    site: Site, scene: Scene, tmp_path: Path, where: str, via: str, code: str
) -> None:
    """Attack 2 (blob store): one byte of the ciphertext flipped, in the broker's blob store
    (the broker's own digest check cuts the download) or by the stand-in as it serves the real
    answer (the grantee's decryption fails authentication): no file, no receipt."""
    coop = site.members["coop"]
    standin = scene.standin
    standin.clear()
    with site.db() as db:
        (digest,) = db.execute(
            "SELECT ciphertext_sha256 FROM datasets WHERE id = ?", (scene.dataset_id,)
        ).fetchone()
    blob = next(p for p in (site.broker_dir / "blobs").rglob("*") if bytes(digest).hex() in p.name)
    original = blob.read_bytes()
    if where == "blob store":
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        blob.chmod(0o600)
        blob.write_bytes(bytes(damaged))
    else:
        standin.on("POST", r"/v1/datasets/\d+/fetch", _flip_one_byte)
    before = _deliveries(site, coop.address)
    out = tmp_path / "delivery.csv"
    try:
        url = standin.url if where == "stand-in" else site.url
        assert _fetch_refused(site, via, url, scene.dataset_id, out) == code
    finally:
        blob.write_bytes(original)

    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert standin.asked("POST", r"/v1/receipts") == []
    assert _deliveries(site, coop.address) == before


def test_forged_domains_are_unused_and_a_changed_deployment_is_refused(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 2 (/v1/config): forged EIP-712 domains are never used (signing domains come from
    the pinned deployment: the fetch signed under them is recorded on chain and receipted); a
    config naming other contracts or another BROKER key is refused with ``deployment_changed``,
    also for a member whose first contact is already the forger, given the operator's
    deployment file. With a node of its own (anvil) the member never asks the broker's relay."""
    coop = site.members["coop"]
    standin = scene.standin
    standin.clear()
    with site.sdk("coop", url=standin.url) as c:  # honest first contact: pins the deployment
        first = c.fetch(scene.dataset_id, tmp_path / "first.csv")
    assert first.chain_independent == (site.backend == "anvil")

    def forged_domains(a: Answer) -> Answer:
        config = a.json()
        for domain in config["domains"].values():
            domain["chainId"] += 1
            domain["verifyingContract"] = "0x" + "66" * 20
        return a.with_json(config)

    standin.on("GET", r"/v1/config", forged_domains)
    with site.sdk("coop", url=standin.url) as c:
        second = c.fetch(scene.dataset_id, tmp_path / "second.csv")
    assert (tmp_path / "second.csv").read_bytes() == scene.source.read_bytes()
    assert second.receipt is not None  # the broker took the receipt: signed for the real domain

    def other_broker(a: Answer) -> Answer:
        config = a.json()
        config["broker"] = "0x" + "77" * 20  # a BROKER key the attacker swapped in
        config["access_ledger"] = "0x" + "88" * 20
        return a.with_json(config)

    standin.clear()
    standin.on("GET", r"/v1/config", other_broker)
    out = tmp_path / "third.csv"
    third = site.drl(
        "coop", "dataset", "fetch", str(scene.dataset_id), "-o", str(out), url=standin.url
    )
    line = one_line_error(third, "deployment_changed")
    assert "access_ledger" in line
    assert "broker" in line
    assert not out.exists()
    assert standin.asked("POST", r"/v1/datasets/\d+/fetch") == []  # no use spent

    # A second machine of the coop, first contact through the forger, with the operator's file.
    handed = next((coop.home / "trust").glob("*.deployment.json"))
    laptop = BrokerClient(
        standin.url,
        coop.keys,
        trust_dir=tmp_path / "laptop-trust",
        chain_url=site.chain_url,
        deployment_file=handed,
    )
    with laptop, pytest.raises(LedgerError) as refused:
        laptop.fetch(scene.dataset_id, tmp_path / "fourth.csv")
    assert refused.value.code == "deployment_changed"
    assert not (tmp_path / "fourth.csv").exists()
    if site.backend == "anvil":
        assert standin.asked("POST", r"/v1/chain/rpc") == []


def test_same_file_in_other_chunks_is_refused_as_already_registered(
    site: Site, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack 6: the same 680 kB file, registered SENSITIVE by the office in 1 MiB chunks, comes
    back from another department as PUBLIC in 64 KiB chunks (through the SDK) and as is (through
    ``drl dataset register``): the content hash is over fixed 1 MiB pieces, so both are the
    registered one and refused ``already_registered``."""
    people(site, ("works", "department"))
    source = sample_csv(tmp_path / "clinics.csv", rows=28_000, tag="C")
    assert source.stat().st_size > 10 * SMALL_CHUNKS
    with site.sdk("office") as c:
        original = c.register(source, title="Clinic visits", classification="sensitive")
    registered = bytes.fromhex(original.content_hash[2:])
    key = crypto.generate_data_key()
    for chunk_size in (SMALL_CHUNKS, crypto.DEFAULT_CHUNK_SIZE):
        with source.open("rb") as src:
            sealed = crypto.encrypt(src, io.BytesIO(), key, chunk_size=chunk_size)
        assert sealed.content_hash == registered

    monkeypatch.setattr(
        member_side, "encrypt", functools.partial(crypto.encrypt, chunk_size=SMALL_CHUNKS)
    )
    with site.sdk("works") as c, pytest.raises(Conflict) as refused:
        c.register(source, title="Clinic visits (open data)", classification="public")
    assert refused.value.code == "already_registered"
    monkeypatch.undo()
    run = site.drl(
        "works",
        "dataset",
        "register",
        str(source),
        "--title",
        "Clinic visits (open data)",
        "--classification",
        "public",
    )
    one_line_error(run, "already_registered")
    with site.db() as db:
        (n,) = db.execute(
            "SELECT count(*) FROM datasets WHERE content_hash = ?", (registered,)
        ).fetchone()
    assert n == 1


def _forged_member_key(thief: bytes) -> Callable[[Answer], Answer]:
    """Relay answers in which ``MemberRegistry.memberOf`` names ``thief`` as the member's key."""
    fn = next(f for f in artifact("MemberRegistry").abi if f.get("name") == "memberOf")
    selector = "0x" + Web3.keccak(text="memberOf(address)")[:4].hex().removeprefix("0x")
    types = ["(" + ",".join(c["type"] for c in fn["outputs"][0]["components"]) + ")"]

    def rewrite(a: Answer) -> Answer:
        call = json.loads(a.request_body)
        if call.get("method") != "eth_call":
            return a
        data = call["params"][0].get("data") or call["params"][0].get("input") or ""
        if not data.lower().startswith(selector):
            return a
        answer = a.json()
        (member,) = decode(types, bytes.fromhex(answer["result"][2:]))
        answer["result"] = "0x" + encode(types, [(*member[:-1], thief)]).hex()
        return a.with_json(answer)

    return rewrite


def test_forged_chain_reads_are_refused_or_never_asked(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 1 through the chain relay: the stand-in answers ``memberOf`` with the thief's key
    in the broker's JSON-RPC relay. A member with its own node (anvil) never asks the relay and
    wraps to the real key. On the embedded chain the relay is the only view, so the owner's
    client checks its answer against the signed records that set the key (the ADMIN-signed
    Onboard, the member's RotateKey): they disagree, and it refuses to wrap
    (``chain_disagrees``), leaving no grant and no wrapped key."""
    coop = site.members["coop"]
    with site.sdk("office") as c:
        dataset = c.register(sample_csv(tmp_path / "relay.csv", rows=20, tag="Q"), title="Q")
    with site.sdk("coop") as c:
        asked = c.request_access(dataset.id, purpose="relay probe study", days=3, uses=1)
    thief, thief_public = crypto.generate_keypair()
    scene.standin.clear()
    scene.standin.on("POST", r"/v1/chain/rpc", _forged_member_key(thief_public.to_bytes()))

    run = site.drl("office", "access", "approve", str(asked.id), url=scene.standin.url)

    with site.db() as db:
        stored = db.execute(
            "SELECT wrapped FROM wrapped_keys WHERE dataset_id = ? AND recipient = ?",
            (dataset.id, coop.address),
        ).fetchall()
    if site.backend == "embedded":
        assert run.returncode != 0
        assert run.stderr.strip().startswith("error [chain_disagrees]"), run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert stored == []
        return
    assert run.returncode == 0, run.stderr
    ((wrapped,),) = stored
    info = key_context(bytes.fromhex(dataset.content_hash[2:]), coop.address)
    with pytest.raises(LedgerError):
        crypto.unwrap_key(bytes(wrapped), thief.to_bytes(), info=info)


def _forged_content_hash(forged: bytes) -> Callable[[Answer], Answer]:
    """Relay answers in which ``DataRegistry.datasetOf`` names ``forged`` as the content hash."""
    fn = next(f for f in artifact("DataRegistry").abi if f.get("name") == "datasetOf")
    selector = "0x" + Web3.keccak(text="datasetOf(uint256)")[:4].hex().removeprefix("0x")
    types = ["(" + ",".join(c["type"] for c in fn["outputs"][0]["components"]) + ")"]

    def rewrite(a: Answer) -> Answer:
        call = json.loads(a.request_body)
        if call.get("method") != "eth_call":
            return a
        data = call["params"][0].get("data") or call["params"][0].get("input") or ""
        if not data.lower().startswith(selector):
            return a
        answer = a.json()
        (record,) = decode(types, bytes.fromhex(answer["result"][2:]))
        answer["result"] = "0x" + encode(types, [(forged, *record[1:])]).hex()
        return a.with_json(answer)

    return rewrite


def test_forged_delivery_with_a_forged_chain_read_is_refused(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 2 with the chain relay forged too: the stand-in serves forged rows named by their
    own hash, and its JSON-RPC relay says the dataset's registered content hash is that hash. A
    member with its own node never asks the relay (``content_hash_mismatch``); on the embedded
    chain the grantee's client checks the relay against the owner-signed Register record and
    refuses (``chain_disagrees``). Either way: no file, no receipt."""
    coop = site.members["coop"]
    forged = crypto.content_hash(io.BytesIO(FORGED_ROWS))
    scene.standin.clear()
    scene.standin.on("POST", r"/v1/datasets/\d+/fetch", _forge_delivery(coop, header="forged"))
    scene.standin.on("POST", r"/v1/chain/rpc", _forged_content_hash(forged))
    before = _deliveries(site, coop.address)
    out = tmp_path / "delivery.csv"

    code = _fetch_refused(site, "cli", scene.standin.url, scene.dataset_id, out)

    assert code == ("chain_disagrees" if site.backend == "embedded" else "content_hash_mismatch")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert scene.standin.asked("POST", r"/v1/receipts") == []
    assert _deliveries(site, coop.address) == before


def _forged_verify(a: Answer) -> Answer:
    return a.with_json({"ok": True, "problems": [], "checked": {"records": 123456, "anchors": 99}})


def _forged_trace(a: Answer) -> Answer:
    trace = a.json() if a.status == 200 else {}
    trace["flows"] = []
    return a.with_json(trace)


def test_forged_verify_and_trace_answers_are_not_used(site: Site, scene: Scene) -> None:
    """Attack 3: the stand-in answers /v1/verify and /v1/trace/* with made-up results; the
    regulator's ``drl verify`` and ``drl trace`` never ask for them and compute their answers
    from the raw records and the chain."""
    people(site, ("auditor", "regulator"))
    standin = scene.standin
    standin.clear()
    standin.on("GET", r"/v1/verify", _forged_verify)
    standin.on("GET", r"/v1/trace/.*", _forged_trace)

    verified = site.drl("auditor", "verify", url=standin.url)
    traced = site.drl("auditor", "trace", str(scene.dataset_id), url=standin.url)

    assert verified.returncode == 0, verified.stderr
    assert "verified on this machine" in verified.stdout
    assert "123456" not in verified.stdout
    assert traced.returncode == 0, traced.stderr
    assert " fetch " in traced.stdout
    assert site.members["coop"].address[:10] in traced.stdout
    assert standin.asked("GET", r"/v1/verify") == []
    assert standin.asked("GET", r"/v1/trace/.*") == []
    assert standin.asked("GET", r"/v1/log/records")  # it read the raw records instead


def _real_leaves(site: Site) -> list[bytes]:
    with site.db() as db:
        return [bytes(r[0]) for r in db.execute("SELECT leaf FROM log_records ORDER BY seq")]


def _altered(leaf: bytes, **context: object) -> bytes:
    record = json.loads(leaf)
    record["context"] = {**record["context"], **context}
    return canonical(record)


def test_forked_or_rewritten_log_is_caught_from_the_kept_checkpoint(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 3: after the regulator and a member kept a checkpoint, the stand-in shows another
    history signed with the real BROKER key: the same size with another root (a fork), or a
    record rewritten and the log grown (a rewrite). ``drl verify`` reports ``log_inconsistent``
    (and keeps both signed notes); the member's next fetch fails with ``log_inconsistent`` and
    signs no receipt."""
    people(site, ("auditor", "regulator"))
    coop = site.members["coop"]
    standin = scene.standin
    standin.clear()
    with site.sdk("auditor", url=standin.url) as c:  # what `drl verify` runs
        assert c.audit().ok
    kept_size = len(_real_leaves(site))
    with site.sdk("coop", url=standin.url) as c:  # a confirmed action: the member keeps a head
        c.fetch(scene.dataset_id, tmp_path / "kept.csv")
    with site.sdk("office") as c:
        pinned = c.pinned()
    origin = origin_for(pinned.chain_id, pinned.flow_log)
    broker = site.broker_account()

    def fork() -> list[bytes]:
        real = _real_leaves(site)[:kept_size]
        return [*real[:-1], _altered(real[-1], note="another history")]

    ForgedLog(fork, broker, origin).install(standin)
    forked = site.drl("auditor", "verify", url=standin.url)
    assert forked.returncode == 1, forked.stdout
    assert "[log_inconsistent] checkpoint" in forked.stderr
    assert "a fork" in forked.stderr

    def rewrite() -> list[bytes]:
        real = _real_leaves(site)
        return [real[0], _altered(real[1], note="rewritten"), *real[2:]]

    standin.clear()
    ForgedLog(rewrite, broker, origin).install(standin)
    with site.sdk("auditor", url=standin.url) as c:
        report = c.audit()
    assert report.codes() == ["log_inconsistent"]
    assert "rewritten or forked" in report.problems[0].what
    assert report.evidence[0].kept_note != report.evidence[0].served_note  # both signed notes
    before = _deliveries(site, coop.address)
    out = tmp_path / "after.csv"
    member = site.drl(
        "coop", "dataset", "fetch", str(scene.dataset_id), "-o", str(out), url=standin.url
    )
    one_line_error(member, "log_inconsistent")
    assert standin.asked("POST", r"/v1/receipts") == []
    assert _deliveries(site, coop.address) == before

    standin.clear()  # the honest log again: consistent with what both kept
    with site.sdk("auditor", url=standin.url) as c:
        assert c.audit().ok


def test_record_altered_in_broker_db_is_named_by_local_verify(
    site: Site, scene: Scene, tmp_path: Path
) -> None:
    """Attack 3 (database): a logged request's purpose is rewritten in broker.db; a regulator
    verifying on its own machine (first run, fresh home) names that record."""
    people(site, ("auditor", "regulator"))
    with site.db() as db:
        seq, leaf = db.execute(
            "SELECT seq, leaf FROM log_records WHERE action = 'request' ORDER BY seq LIMIT 1"
        ).fetchone()
    record = json.loads(bytes(leaf))
    record["signed"]["message"]["purpose"] = "marketing"  # the signed part: the signature breaks
    fresh = tmp_path / "auditor-laptop"
    shutil.copytree(site.members["auditor"].home / "members", fresh / "members")
    with site.db() as db:
        db.execute("UPDATE log_records SET leaf = ? WHERE seq = ?", (canonical(record), seq))
    try:
        run = site.drl("auditor", "verify", extra={"DRL_HOME": str(fresh)})
    finally:
        with site.db() as db:
            db.execute("UPDATE log_records SET leaf = ? WHERE seq = ?", (bytes(leaf), seq))
    assert run.returncode == 1, run.stdout
    assert f"log record {seq}" in run.stderr
    assert "FAIL" in run.stderr
