"""py_ecc's BLS tables are not computed at start-up, and behave as before once used.

Each check runs in a fresh interpreter: the suite's own process has long imported everything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_cli_starts_without_loading_bls() -> None:
    out = run(
        """
        import sys
        import ledger.cli, eth_account, eth_keyfile
        from ledger import _deferred_bls
        print(_deferred_bls.loaded(), "py_ecc.optimized_bls12_381" in sys.modules)
        """
    )
    assert out == "False False"


def test_key_files_encrypt_and_decrypt_with_the_stand_ins() -> None:
    out = run(
        """
        import ledger
        from eth_account import Account
        from ledger import _deferred_bls
        key = b"\\x07" * 32
        blob = Account.encrypt(key, "pw", kdf="scrypt", iterations=2**10)
        print(Account.decrypt(blob, "pw") == key, _deferred_bls.loaded())
        """
    )
    assert out == "True False"


def test_the_stood_in_constant_is_the_real_one_and_first_use_loads_the_real_modules() -> None:
    out = run(
        """
        import ledger, sys
        import py_ecc.bls12_381 as stand_in
        from py_ecc.bls import G2ProofOfPossession as suite
        from ledger import _deferred_bls
        before = stand_in.curve_order
        modulus = stand_in.field_modulus  # not stood in: loads the real modules
        real = sys.modules["py_ecc.bls12_381"]
        print(
            _deferred_bls.loaded(),
            real is not stand_in,
            before == real.curve_order == _deferred_bls.CURVE_ORDER,
            modulus == real.field_modulus,
        )
        """
    )
    assert out == "True True True True"


def test_a_deferred_ciphersuite_signs_and_verifies_as_the_real_one() -> None:
    out = run(
        """
        import ledger
        from py_ecc.bls import G2ProofOfPossession as deferred
        secret = deferred.KeyGen(b"\\x01" * 32)
        public = deferred.SkToPk(secret)
        signature = deferred.Sign(secret, b"data rights")
        import py_ecc.bls
        real = py_ecc.bls.G2ProofOfPossession
        print(
            deferred.Verify(public, b"data rights", signature),
            real.SkToPk(secret) == public,
            deferred is not real,
        )
        """
    )
    assert out == "True True True"


def test_submodules_of_the_stand_ins_import_the_real_modules() -> None:
    out = run(
        """
        import ledger, sys
        import eth_account  # eth-keyfile takes the stand-ins
        # A submodule of a stood-in package: it imports py_ecc.bls.hash_to_curve.
        from eth.precompiles.bls12_381 import bls12_381_g1
        from ledger import _deferred_bls
        hash_to_curve = sys.modules["py_ecc.bls.hash_to_curve"]
        real = sys.modules["py_ecc.bls"]
        print(
            _deferred_bls.loaded(),
            real.hash_to_curve is hash_to_curve,
            hash_to_curve.__name__,
            type(real.G2ProofOfPossession).__name__,
        )
        """
    )
    assert out == "True True py_ecc.bls.hash_to_curve ABCMeta"  # the real class, no proxy


def test_a_bls12_381_precompile_called_on_the_chain_loads_and_answers_as_py_evm_s() -> None:
    """G1ADD (EIP-2537, address 0x0b) of two points at infinity is the point at infinity."""
    out = run(
        """
        import ledger, sys
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import Web3, EthereumTesterProvider
        from ledger import _deferred_bls
        w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
        before = _deferred_bls.loaded()
        answer = w3.eth.call({"to": "0x" + "00" * 19 + "0b", "data": "0x" + "00" * 256})
        real = sys.modules["eth.precompiles.bls12_381"]
        print(before, _deferred_bls.loaded(), answer.hex() == "00" * 128, hasattr(real, "__file__"))
        """
    )
    assert out == "False True True True"
