"""Attack 1 (key substitution) and the member registry against the broker's own keys.

The attacker holds the broker host. It swaps the requester's encryption key in broker.db before
the owner approves, hoping the owner wraps the data key to a key it holds; and it uses the
BROKER key (and the ADMIN key, which the single-host setup keeps on the same machine) directly
against MemberRegistry to replace a member's key or to onboard a member of its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ledger import crypto
from ledger.client.sdk import fingerprint
from ledger.errors import LedgerError
from ledger.protocol.actions import new_nonce, sign_action
from ledger.protocol.documents import key_context
from tests.adversary.conftest import Site
from tests.adversary.helpers import expect_revert, people, sample_csv


@pytest.fixture(scope="module")
def crowd(site: Site) -> dict[str, str]:
    return people(site, ("office", "department"), ("coop", "enterprise"))


def test_key_swapped_in_broker_db_is_not_wrapped_to(
    site: Site, crowd: dict[str, str], tmp_path: Path
) -> None:
    """Attack 1: the requester's key is swapped in broker.db before approve; the owner's client
    wraps to the key registered on chain and shows its fingerprint, the grantee decrypts, and the
    broker's substitute key opens nothing."""
    office, coop = site.members["office"], site.members["coop"]
    source = sample_csv(tmp_path / "casework.csv", rows=300, tag="K")
    with site.sdk("office") as c:
        dataset = c.register(source, title="Casework register")
    with site.sdk("coop") as c:
        request = c.request_access(dataset.id, purpose="solar siting study", days=30, uses=2)

    thief, thief_public = crypto.generate_keypair()
    with site.db() as db:
        db.execute(
            "UPDATE members SET encryption_key = ? WHERE address = ?",
            (thief_public.to_bytes(), coop.address),
        )
    with site.sdk("office") as c:  # the broker's directory now names the thief's key ...
        assert c.member(coop.address).encryption_key == "0x" + thief_public.to_bytes().hex()

    approved = site.drl("office", "access", "approve", str(request.id))

    assert approved.returncode == 0, approved.stderr
    real_key = bytes.fromhex(coop.profile.encryption_key[2:])
    assert fingerprint(coop.profile.key_suite, real_key) in approved.stdout  # ... not the owner's
    assert fingerprint(thief_public.suite.id, thief_public.to_bytes()) not in approved.stdout
    with site.db() as db:
        (wrapped,) = db.execute(
            "SELECT wrapped FROM wrapped_keys WHERE dataset_id = ? AND recipient = ?",
            (dataset.id, coop.address),
        ).fetchone()
    info = key_context(bytes.fromhex(dataset.content_hash[2:]), coop.address)
    with pytest.raises(LedgerError):
        crypto.unwrap_key(bytes(wrapped), thief.to_bytes(), info=info)
    assert len(crypto.unwrap_key(bytes(wrapped), coop.keys.hpke.to_bytes(), info=info)) == 32

    out = tmp_path / "received.csv"
    fetched = site.drl("coop", "dataset", "fetch", str(dataset.id), "-o", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == source.read_bytes()
    del office


def test_broker_and_admin_keys_cannot_rotate_a_key_or_onboard_a_sybil(
    site: Site, crowd: dict[str, str]
) -> None:
    """Attack 1 (rotateKey by the operator's keys) and attack 4 (a sybil onboarded by the broker
    key): MemberRegistry refuses both keys for another member's key, and the BROKER key cannot
    onboard, directly or with a signature of its own."""
    coop = site.members["coop"]
    _, thief_public = crypto.generate_keypair()
    stolen = thief_public.to_bytes()
    sybil = crypto.generate_keypair()[1].to_bytes()
    sybil_address = "0x" + os.urandom(20).hex()
    deadline = int(time.time()) + 600
    with site.broker_stopped(), site.attacker_chain() as broker:
        domains = broker.deployment.domains
        admin = broker.acting_as(site.admin_account())
        _fund_from(broker, admin.account.address)
        before = broker.member(coop.address)

        for key, chain in (("broker", broker), ("admin", admin)):
            signer = chain.account
            with expect_revert("MemberRegistryUnknownMember"):  # rotateKey: only one's own key
                chain.rotate_key(key_suite=thief_public.suite.id, encryption_key=stolen)
            forged = sign_action(
                signer,
                "rotate_key",
                {
                    "member": coop.address,
                    "keySuite": thief_public.suite.id,
                    "encryptionKey": stolen,
                    "nonce": new_nonce(),
                    "deadline": deadline,
                },
                domains,
            )
            with expect_revert("MemberRegistryInvalidSigner", signer=signer.address):
                chain.rotate_key_for(
                    coop.address,
                    key_suite=thief_public.suite.id,
                    encryption_key=stolen,
                    nonce=int(forged.message["nonce"]),
                    deadline=deadline,
                    signature=forged.signature,
                )
            assert key  # (which key failed is in the assertion message of expect_revert)

        with expect_revert("AccessControlUnauthorizedAccount"):
            broker.onboard(
                sybil_address,
                kind="enterprise",
                name_hash=os.urandom(32),
                key_suite=thief_public.suite.id,
                encryption_key=sybil,
            )
        onboard = sign_action(
            broker.account,
            "onboard",
            {
                "member": sybil_address,
                "kind": 2,
                "name": "Sybil Analytics Ltd",
                "keySuite": thief_public.suite.id,
                "encryptionKey": sybil,
                "nonce": new_nonce(),
                "deadline": deadline,
            },
            domains,
        )
        with expect_revert("MemberRegistryUnauthorizedSigner", signer=broker.account.address):
            broker.onboard_for(
                sybil_address,
                kind="enterprise",
                name="Sybil Analytics Ltd",
                key_suite=thief_public.suite.id,
                encryption_key=sybil,
                nonce=int(onboard.message["nonce"]),
                deadline=deadline,
                signature=onboard.signature,
            )

        assert broker.member(coop.address) == before
        assert not broker.member(sybil_address).active
        assert not broker.events("MemberRegistry", "EncryptionKeyRotated")


def _fund_from(chain: object, address: str) -> None:
    """Give the ADMIN key gas money from the broker key (the attacker holds both)."""
    from ledger.chain.client import LedgerChain

    assert isinstance(chain, LedgerChain)
    w3 = chain.w3
    sender = chain.account
    tx = {
        "to": address,
        "value": 10**18,
        "gas": 21000,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * int(w3.eth.get_block("latest")["baseFeePerGas"]) + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
