"""Run the local cluster of docs/deploy.md until Ctrl-C (the one tests/scaleout runs).

PostgreSQL (a throwaway cluster), anvil from node_modules, the BROKER key in one keystore both
replicas read, the ADMIN key beside them for the operator's commands, and a shared blob folder.
Prints each replica's URL and the environment for `drl` as the operator.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.scaleout.cluster import local_cluster  # noqa: E402
from tests.support.chain import running_anvil  # noqa: E402
from tests.support.http_kit import PASSPHRASE  # noqa: E402
from tests.support.pg import fresh_database, throwaway_cluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="state folder (default: a temporary one)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="drl-cluster-"))
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"cluster state in {root} (starting PostgreSQL, anvil, replicas a and b ...)")
    with ExitStack() as stack:
        pg = stack.enter_context(throwaway_cluster())
        node = stack.enter_context(running_anvil(root))
        c = stack.enter_context(
            local_cluster(root / "brokers", database_url=fresh_database(pg), node_url=node)
        )
        a, b = c.replicas["a"], c.replicas["b"]
        print(
            f"\nreplica a: {a.url}   replica b: {b.url}\n"
            f"PostgreSQL: {pg.url('<db>')} (trust auth, loopback)   node: {node}\n"
            f"shared blobs: {c.blobs}   BROKER key: {c.broker_key}\n\n"
            "As the operator, in another shell:\n"
            f"  export DRL_HOME={c.root / 'operator-home'} DRL_PASSPHRASE={PASSPHRASE}\n"
            f"  export DRL_ADMIN_KEY={c.admin_key} DRL_CHAIN_URL={node}\n"
            f"  export DRL_BROKER_URL={a.url}   # or {b.url}: either replica serves\n"
            "  .venv/bin/drl member new office --kind department --name 'Planning Office'\n"
            "  .venv/bin/drl admin onboard office\n"
            f"  curl -s {a.url}/v1/health; curl -s {b.url}/v1/health\n"
            f"\nlogs: {a.log} and {b.log}. Ctrl-C stops everything.",
            flush=True,
        )
        try:
            while not stop.wait(1):
                for replica in (a, b):
                    if replica.process is not None and replica.process.poll() is not None:
                        print(f"replica {replica.name} exited; see {replica.log}")
                        stop.set()
        except KeyboardInterrupt:
            pass
    print("stopped")


if __name__ == "__main__":
    os.environ.setdefault("DRL_KDF_FAST", "1")
    main()
