"""Onboarding and suspension (operator-signed, mirrored from MemberRegistry); nonces, credits."""

from __future__ import annotations

import hashlib
from typing import get_args

from eth_utils.address import to_checksum_address

from ledger.crypto import get_suite
from ledger.errors import Conflict, InvalidInput
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import Credits, Nonces
from ledger.services import flowlog, policy
from ledger.services.context import Ledger, check_signed, consume_nonce
from ledger.store.models import Member
from ledger.types import MemberKind


def onboard(ledger: Ledger, signed: SignedAction) -> Member:
    """Add a member on chain and in the index; only the operator may."""
    signer = check_signed(ledger, signed, "onboard")
    policy.require_operator(signer, ledger.operator, "only the operator onboards members")
    msg = signed.message
    kind = msg["kind"]
    if kind not in get_args(MemberKind):
        raise InvalidInput(f"unknown member kind {kind!r}")
    name = str(msg["name"]).strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("member name must be 1 to 200 characters")
    suite = get_suite(int(msg["keySuite"]))
    key = bytes.fromhex(str(msg["encryptionKey"])[2:])
    if len(key) != suite.public_key_size:
        raise InvalidInput(f"{suite.name} public keys are {suite.public_key_size} bytes")
    address = to_checksum_address(str(msg["member"]))
    with ledger.db.transaction() as session:
        if session.get(Member, address) is not None:
            raise Conflict(f"{address} is already a member", code=ErrorCode.ALREADY_MEMBER)
        consume_nonce(session, signed)
        tx = ledger.chain.onboard(
            address,
            kind=kind,
            name_hash=hashlib.sha256(name.encode()).digest(),
            key_suite=suite.id,
            encryption_key=key,
        )
        seq = flowlog.append(session, signed, context={"tx": tx.tx_hash})
        member = Member(
            address=address,
            kind=kind,
            name=name,
            key_suite=suite.id,
            encryption_key=key,
            onboarded_tx=tx.tx_hash,
            log_seq=seq,
        )
        session.add(member)
        session.flush()
        session.refresh(member)
        session.expunge(member)
    return member


def suspend(ledger: Ledger, signed: SignedAction) -> Member:
    """Suspend a member on chain and in the index; only the operator may."""
    signer = check_signed(ledger, signed, "suspend")
    policy.require_operator(signer, ledger.operator, "only the operator suspends members")
    address = to_checksum_address(str(signed.message["member"]))
    with ledger.db.transaction() as session:
        member = session.get(Member, address)
        if member is None:
            raise Conflict(f"{address} is not a member", code=ErrorCode.NOT_A_MEMBER)
        if member.status == "suspended":
            raise Conflict(f"{address} is already suspended", code=ErrorCode.ALREADY_SUSPENDED)
        consume_nonce(session, signed)
        tx = ledger.chain.suspend(address)
        flowlog.append(session, signed, context={"tx": tx.tx_hash})
        member.status = "suspended"
        session.add(member)
        session.flush()
        session.refresh(member)
        session.expunge(member)
    return member


def nonces(ledger: Ledger, address: str) -> Nonces:
    """The member's next on-chain EIP-712 nonces (for Register, Grant and Revoke)."""
    return Nonces(
        address=address,
        data_registry=ledger.chain.nonce("DataRegistry", address),
        access_ledger=ledger.chain.nonce("AccessLedger", address),
    )


def credits(ledger: Ledger, address: str) -> Credits:
    """The sharing credits the member holds on chain."""
    return Credits(address=address, balance=ledger.chain.credits_of(address), symbol="DSC")
