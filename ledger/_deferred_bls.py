"""Keep py_ecc's BLS12-381 code from loading at start-up: nothing here uses BLS.

eth-keyfile (which eth-account needs for every key file) imports ``py_ecc.bls`` and
``py_ecc.bls12_381`` at module level for EIP-2335 BLS keystores. Importing them computes field
tables in pure Python: about 0.85 s of CPU, three quarters of every ``drl`` command's start and
of every broker start. This project's keys are secp256k1 only. py-evm imports the same tables
for the BLS12-381 precompiles of Prague (EIP-2537), which no contract of ours calls.

:func:`install` puts two stand-in modules in ``sys.modules`` before eth-keyfile is imported:
``py_ecc.bls`` whose ciphersuites are proxies, ``py_ecc.bls12_381`` with the one constant
eth-keyfile reads at import (``curve_order``, checked against the real module in the tests),
and ``eth.precompiles.bls12_381`` whose seven precompiles load the real one when called.
The first use of anything else — a BLS keystore, a precompile — loads the real modules and
hands over to them, so behaviour is unchanged; only the cost moves to where it is needed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from typing import Any, Final

#: BLS12-381's group order r, as ``py_ecc.bls12_381.curve_order`` defines it.
CURVE_ORDER: Final = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
PRECOMPILES: Final = "eth.precompiles.bls12_381"
STOOD_IN: Final = ("py_ecc.bls", "py_ecc.bls12_381", PRECOMPILES)
#: Stood in at install; the precompiles' stand-in is made when py-evm imports them.
_EAGER_STAND_INS: Final = ("py_ecc.bls", "py_ecc.bls12_381")
_CIPHERSUITES: Final = ("G2Basic", "G2MessageAugmentation", "G2ProofOfPossession")
#: py-evm's BLS12-381 precompiles (EIP-2537, Prague): called by address, from the fork's table.
_PRECOMPILES: Final = (
    "bls12_g1_add",
    "bls12_g1_msm",
    "bls12_map_fp_to_g1",
    "bls12_g2_add",
    "bls12_g2_msm",
    "bls12_map_fp2_to_g2",
    "bls12_pairing_check",
)
_lock = threading.RLock()
_real: dict[str, types.ModuleType] = {}
_loading = False


def _load() -> dict[str, types.ModuleType]:
    """Replace the stand-ins with the real modules (once) and return those."""
    global _loading
    with _lock:
        if not _real and not _loading:
            _loading = True
            try:
                stand_ins = {name: sys.modules.pop(name, None) for name in STOOD_IN}
                # py-evm's precompiles only where py-evm was imported (their stand-in exists).
                wanted = [n for n in STOOD_IN if stand_ins[n] is not None or n in _EAGER_STAND_INS]
                _real.update({name: importlib.import_module(name) for name in wanted})
            finally:
                _loading = False
            for name, stand_in in stand_ins.items():
                if stand_in is not None and stand_in is not _real[name]:
                    stand_in.__dict__.update(
                        {k: v for k, v in vars(_real[name]).items() if not k.startswith("__")}
                    )
        return _real


class _Suite:
    """A ciphersuite that loads ``py_ecc.bls`` on first use and answers as the real one."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(getattr(_load()["py_ecc.bls"], self._name), attr)

    def __repr__(self) -> str:
        return f"<deferred py_ecc.bls.{self._name}>"


def _precompile(name: str) -> Any:
    """A precompile that loads py-evm's BLS12-381 module when first called, then calls it."""

    def call(computation: Any) -> Any:
        return getattr(_load()["eth.precompiles.bls12_381"], name)(computation)

    call.__name__ = call.__qualname__ = name
    return call


class _Existing(importlib.abc.Loader):
    """Hands the import system a module :func:`_load` already loaded."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return sys.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Precompiles(importlib.abc.Loader):
    """Creates the stand-in for py-evm's BLS12-381 precompiles when py-evm imports them."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _module(PRECOMPILES, {name: _precompile(name) for name in _PRECOMPILES})

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Finder(importlib.abc.MetaPathFinder):
    """A submodule of a stood-in package (``py_ecc.bls.hash_to_curve``, which py-evm's BLS
    precompiles import) loads the real packages first; the submodule is then theirs."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == PRECOMPILES and not _real and not _loading:
            # Stood in only when py-evm imports it, so no "eth." module shows up elsewhere.
            return importlib.util.spec_from_loader(fullname, _Precompiles(), is_package=True)
        if _real or _loading or not fullname.startswith(tuple(f"{name}." for name in STOOD_IN)):
            return None  # not ours, done, or the real packages importing their own submodules
        _load()
        if fullname in sys.modules:
            return importlib.util.spec_from_loader(fullname, _Existing())
        return None


def _module(name: str, eager: dict[str, Any]) -> types.ModuleType:
    stand_in = types.ModuleType(
        name, f"Stand-in for {name} until first use (ledger._deferred_bls)."
    )
    stand_in.__dict__.update(eager)
    # A package, so that its submodules can be imported (through _Finder); the path is found
    # without importing the parent package (eth.precompiles would import the stand-in itself).
    stand_in.__path__ = _package_path(name)

    def __getattr__(attr: str) -> Any:  # PEP 562: anything not stood in loads the real module
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(_load()[name], attr)

    stand_in.__dict__["__getattr__"] = __getattr__
    return stand_in


def _package_path(name: str) -> list[str]:
    top, _, rest = name.partition(".")
    spec = importlib.util.find_spec(top)
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = os.path.join(root, *rest.split("."))
        if os.path.isdir(folder):
            return [folder]
    return []


def install() -> None:
    """Stand in for the BLS modules unless they (or their users) are already loaded."""
    users = ("eth_keyfile.keyfile", "eth.precompiles")
    if any(name in sys.modules for name in (*STOOD_IN, *users)):
        return
    sys.modules["py_ecc.bls"] = _module(
        "py_ecc.bls", {name: _Suite(name) for name in _CIPHERSUITES}
    )
    sys.modules["py_ecc.bls12_381"] = _module("py_ecc.bls12_381", {"curve_order": CURVE_ORDER})
    sys.meta_path.insert(0, _Finder())


def loaded() -> bool:
    """Whether the real BLS modules have been loaded."""
    return bool(_real)
