"""Onboarding, suspension, reinstatement and key rotation; nonces and credits.

Onboarding, suspension and reinstatement are signed by the operator's ADMIN key, which need
not live on the broker host: the broker relays the signature (``onboardFor`` ...) and
MemberRegistry checks that its signer holds ADMIN. A key rotation is signed by the member
itself (``rotateKeyFor``): neither the broker's key nor ADMIN can replace a member's key.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from ledger.crypto import get_suite
from ledger.errors import Conflict, InvalidInput
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import Credits, Nonces
from ledger.services import flowlog, policy
from ledger.services.context import Ledger, check_signed, consume_nonce
from ledger.store.models import Member
from ledger.types import kind_name


def _key(signed: SignedAction) -> tuple[int, bytes]:
    """The HPKE suite and public key a signed onboard or rotation names, checked for shape."""
    suite = get_suite(int(signed.message["keySuite"]))
    key = bytes.fromhex(str(signed.message["encryptionKey"])[2:])
    if len(key) != suite.public_key_size:
        raise InvalidInput(f"{suite.name} public keys are {suite.public_key_size} bytes")
    return suite.id, key


def onboard(ledger: Ledger, signed: SignedAction) -> Member:
    """Add a member on chain and in the index, relaying the operator's signed Onboard."""
    signer = check_signed(ledger, signed, "onboard")
    policy.require_operator(signer, ledger.operator, "only the operator onboards members")
    msg = signed.message
    kind = kind_name(int(msg["kind"]))
    if kind is None:
        raise InvalidInput(f"unknown member kind {msg['kind']!r}")
    name = str(msg["name"])
    if not 1 <= len(name) <= 200 or name != name.strip():
        raise InvalidInput("member name must be 1 to 200 characters, without outer spaces")
    suite, key = _key(signed)
    address = to_checksum_address(str(msg["member"]))
    with ledger.db.transaction() as session:
        if session.get(Member, address) is not None:
            raise Conflict(f"{address} is already a member", code=ErrorCode.ALREADY_MEMBER)
        consume_nonce(session, signed)
        tx = ledger.chain.onboard_for(
            address,
            kind=kind,
            name=name,
            key_suite=suite,
            encryption_key=key,
            nonce=int(msg["nonce"]),
            deadline=int(msg["deadline"]),
            signature=signed.signature,
        )
        seq = flowlog.append(session, signed, context={"tx": tx.tx_hash})
        member = Member(
            address=address,
            kind=kind,
            name=name,
            key_suite=suite,
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
    """Suspend a member, relaying the operator's signed Suspend."""
    return _set_status(ledger, signed, "suspend")


def reinstate(ledger: Ledger, signed: SignedAction) -> Member:
    """Lift a suspension, relaying the operator's signed Reinstate."""
    return _set_status(ledger, signed, "reinstate")


def _set_status(ledger: Ledger, signed: SignedAction, action: str) -> Member:
    signer = check_signed(ledger, signed, action)
    policy.require_operator(signer, ledger.operator, f"only the operator may {action} members")
    address = to_checksum_address(str(signed.message["member"]))
    suspending = action == "suspend"
    with ledger.db.transaction() as session:
        member = session.get(Member, address)
        if member is None:
            raise Conflict(f"{address} is not a member", code=ErrorCode.NOT_A_MEMBER)
        if suspending and member.status == "suspended":
            raise Conflict(f"{address} is already suspended", code=ErrorCode.ALREADY_SUSPENDED)
        if not suspending and member.status != "suspended":
            raise Conflict(f"{address} is not suspended", code=ErrorCode.NOT_SUSPENDED)
        consume_nonce(session, signed)
        relay = ledger.chain.suspend_for if suspending else ledger.chain.reinstate_for
        tx = relay(
            address,
            nonce=int(signed.message["nonce"]),
            deadline=int(signed.message["deadline"]),
            signature=signed.signature,
        )
        flowlog.append(session, signed, context={"tx": tx.tx_hash})
        member.status = "suspended" if suspending else "active"
        session.add(member)
        session.flush()
        session.refresh(member)
        session.expunge(member)
    return member


def rotate_key(ledger: Ledger, signed: SignedAction) -> Member:
    """Replace a member's encryption key, relaying the member's own signed RotateKey."""
    signer = check_signed(ledger, signed, "rotate_key")
    suite, key = _key(signed)
    with ledger.db.transaction() as session:
        member = session.get(Member, signer)
        if member is None:
            raise Conflict(f"{signer} is not a member", code=ErrorCode.NOT_A_MEMBER)
        consume_nonce(session, signed)
        tx = ledger.chain.rotate_key_for(
            signer,
            key_suite=suite,
            encryption_key=key,
            nonce=int(signed.message["nonce"]),
            deadline=int(signed.message["deadline"]),
            signature=signed.signature,
        )
        flowlog.append(session, signed, context={"tx": tx.tx_hash})
        member.key_suite, member.encryption_key = suite, key
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
