"""Issue 8, item 6: the chunk size is no way around "a content hash can be registered once".

The content hash is defined over fixed 1 MiB plaintext pieces, so the same file encrypted with
64 KiB chunks has the 1 MiB file's content hash and its registration is refused as already
registered (it can no longer come back PUBLIC beside a SENSITIVE original). The metadata
document declares the file's ``chunk_size`` and the broker, reading the upload's header before
it stores anything, refuses a file chunked otherwise (``chunking_mismatch``) and keeps nothing:
no blob, no dataset row, no wrapped key, no flow-log record, no registration on chain.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlmodel import func, select

from ledger.client import member
from ledger.client.member import MemberKeys, PreparedUpload, prepare_upload
from ledger.crypto import EncryptResult, encrypt
from ledger.crypto.format import DEFAULT_CHUNK_SIZE, Header
from ledger.errors import Conflict, InvalidInput
from ledger.protocol.codes import ErrorCode
from ledger.services import datasets
from ledger.store.models import Dataset, LogRecord, UploadIntent, WrappedKey
from ledger.types import Classification
from tests.support import kit

SMALL_CHUNKS = 64 * 1024


@dataclasses.dataclass
class World:
    broker: kit.Broker
    office: MemberKeys
    rival: MemberKeys
    work: Path
    source: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("canonical")
    broker = kit.make_broker(root / "broker")
    office = kit.onboard(broker, "department", "District Planning Office")
    rival = kit.onboard(broker, "department", "Harbour Works Office")
    work = root / "work"
    work.mkdir()
    # About 1.6 MiB: two 1 MiB pieces, 26 chunks of 64 KiB.
    source = kit.small_csv(work / "permits.csv", rows=70_000)
    try:
        yield World(broker, office, rival, work, source)
    finally:
        broker.close()


def prepare(
    world: World,
    owner: MemberKeys,
    *,
    classification: Classification = "internal",
    encrypt_with: Callable[..., EncryptResult] = encrypt,
) -> PreparedUpload:
    ledger = world.broker.ledger
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(member, "encrypt", encrypt_with)
        return prepare_upload(
            owner,
            world.source,
            workdir=world.work,
            title="District building permits 2025",
            domains=ledger.domains,
            chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
            classification=classification,
        )


def chunked(chunk_size: int) -> Callable[..., EncryptResult]:
    return functools.partial(encrypt, chunk_size=chunk_size)


def lying(actual: int, declared: int) -> Callable[..., EncryptResult]:
    """A client that chunks the file one way and declares another in the metadata."""

    def run(src: BinaryIO, dst: BinaryIO, key: bytes, **kwargs: Any) -> EncryptResult:
        result = encrypt(src, dst, key, **{**kwargs, "chunk_size": actual})
        return dataclasses.replace(result, chunk_size=declared)

    return run


def stored(world: World) -> dict[str, Any]:
    """Everything a registration would leave behind."""
    ledger = world.broker.ledger
    with ledger.db.session() as session:
        counts = {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Dataset, WrappedKey, LogRecord)
        }
    return {
        **counts,
        "blobs": sorted(ledger.blobs.iter_digests()),
        "office_nonce": ledger.chain.nonce("DataRegistry", world.office.address),
        "rival_nonce": ledger.chain.nonce("DataRegistry", world.rival.address),
    }


def register(world: World, prepared: PreparedUpload) -> Dataset:
    with prepared.ciphertext_path.open("rb") as fh:
        return datasets.register(
            world.broker.ledger,
            prepared.signed,
            metadata=prepared.metadata,
            owner_wrapped_key=prepared.owner_wrapped_key,
            ciphertext=fh,
        )


def test_metadata_declares_the_files_chunk_size(world: World) -> None:
    for chunk_size in (DEFAULT_CHUNK_SIZE, SMALL_CHUNKS):
        prepared = prepare(world, world.office, encrypt_with=chunked(chunk_size))
        header = Header.parse(prepared.ciphertext_path.read_bytes())
        assert prepared.metadata["chunk_size"] == header.chunk_size == chunk_size


def test_a_declared_chunking_the_upload_does_not_have_is_refused_and_nothing_is_stored(
    world: World,
) -> None:
    before = stored(world)
    for actual, declared in ((SMALL_CHUNKS, DEFAULT_CHUNK_SIZE), (DEFAULT_CHUNK_SIZE, 100_000)):
        prepared = prepare(world, world.office, encrypt_with=lying(actual, declared))
        assert Header.parse(prepared.ciphertext_path.read_bytes()).chunk_size == actual

        # Directly ...
        with pytest.raises(InvalidInput) as caught:
            register(world, prepared)
        assert caught.value.code == ErrorCode.CHUNKING_MISMATCH
        assert ErrorCode.CHUNKING_MISMATCH.status == 422
        assert f"chunk_size {declared}" in caught.value.message
        assert stored(world) == before

        # ... and the way the API does it: the signed registration first, the bytes after.
        ledger = world.broker.ledger
        intent = datasets.begin_upload(
            ledger,
            prepared.signed,
            metadata=prepared.metadata,
            owner_wrapped_key=prepared.owner_wrapped_key,
        )
        with prepared.ciphertext_path.open("rb") as fh, pytest.raises(InvalidInput) as caught:
            datasets.complete_upload(ledger, intent.id, fh, uploader=world.office.address)
        assert caught.value.code == ErrorCode.CHUNKING_MISMATCH
        assert stored(world) == before
        with ledger.db.transaction() as session:
            session.delete(session.get(UploadIntent, intent.id))


def test_metadata_without_chunk_size_is_refused(world: World) -> None:
    prepared = prepare(world, world.office)
    before = stored(world)
    for bad in (None, "1048576", True, 0, 63, 16 * 1024 * 1024 + 1):
        metadata = {k: v for k, v in prepared.metadata.items() if k != "chunk_size"}
        if bad is not None:
            metadata["chunk_size"] = bad
        with pytest.raises(InvalidInput, match="chunk_size"):
            datasets.begin_upload(
                world.broker.ledger,
                prepared.signed,
                metadata=metadata,
                owner_wrapped_key=prepared.owner_wrapped_key,
            )
    assert stored(world) == before


def test_the_same_file_in_other_chunks_has_the_same_content_hash_and_registers_once(
    world: World,
) -> None:
    small = prepare(world, world.rival, encrypt_with=chunked(SMALL_CHUNKS))
    odd = prepare(world, world.rival, encrypt_with=chunked(100_000))
    large = prepare(world, world.office, classification="sensitive")
    assert small.content_hash == odd.content_hash == large.content_hash
    assert small.ciphertext_sha256 != large.ciphertext_sha256

    first = register(world, large)
    assert first.content_hash == large.content_hash
    assert first.classification == "sensitive"
    after_first = stored(world)
    for rerun in (small, odd):
        # The attack: the same plaintext, other chunks, registered again as public.
        again = prepare(
            world,
            world.rival,
            classification="public",
            encrypt_with=chunked(rerun.metadata["chunk_size"]),
        )
        for attempt in (again, rerun):
            with pytest.raises(Conflict) as caught:
                register(world, attempt)
            assert caught.value.code == ErrorCode.ALREADY_REGISTERED
    assert stored(world) == after_first
