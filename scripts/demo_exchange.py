"""The main job: the full exchange over real HTTP, told as a short story.

Starts `drl serve` on a free loopback port, then drives the `drl` CLI exactly as people would:
a district office reviews the schema frictionless infers for its building-permit register,
checks every row, registers it with its labels (encrypted on its machine), a solar cooperative
requests it on the standard request form, the office approves, the cooperative fetches and
verifies it, files a quality issue, the office registers a corrected version and answers the
issue, the quality score follows, the flow log is anchored, credits are minted, and the data
protection authority verifies the whole ledger, traces the flow and recomputes the score. Run it
again with the same DRL_HOME and it continues on the same chain with a derived extract.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.client.sdk import BrokerClient  # noqa: E402
from tests.support.broker import BrokerDidNotStart, start_broker, stop_broker  # noqa: E402
from tests.support.net import free_port  # noqa: E402

SAMPLE = ROOT / "samples" / "building_permits.csv"
SCHEMA = ROOT / "samples" / "building_permits.schema.json"
DRL = [str(Path(sys.executable).with_name("drl"))]  # the installed executable
#: The office's labels (EU data themes, keywords, its update promise).
LABELS = ["--theme", "GOVE", "--theme", "REGI", "--keyword", "building permits",
          "--frequency", "MONTHLY"]  # fmt: skip
#: The cooperative's standard request form.
FORM = ["--category", "research", "--legal-basis", "legitimate-interests",
        "--retention-days", "0", "--location", "DE"]  # fmt: skip


def say(step: str, text: str) -> None:
    print(f"\n\033[1m{step}\033[0m " + textwrap.fill(text, 96, subsequent_indent="   "))


def drl(*args: str, show: bool = True, check: bool = True) -> str:
    if show:
        print(f"   $ drl {' '.join(a if ' ' not in a else repr(a) for a in args)}")
    result = subprocess.run([*DRL, *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        sys.exit(f"demo failed at `drl {' '.join(args)}`:\n{result.stderr}")
    if show:
        notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
        for line in [*result.stdout.rstrip().splitlines(), *notes]:
            print(f"     {line}")
    return result.stdout


def have(handle: str) -> bool:
    home = Path(os.environ["DRL_HOME"])
    return (home / "members" / handle / "profile.json").exists()


def next_extract(workdir: Path) -> tuple[Path, str]:
    """A derived extract (one ward) not registered before, for a second run."""
    with SAMPLE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    wards = sorted({r["ward"] for r in rows})
    marker = Path(os.environ["DRL_HOME"]) / "demo-runs"
    run = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(run + 1))
    ward = wards[run % len(wards)]
    quarter = run // len(wards) % 4 + 1
    months = {f"2025-{m:02d}" for m in range(3 * quarter - 2, 3 * quarter + 1)}
    path = workdir / f"permits-{ward.lower().replace(' ', '-')}-q{quarter}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["ward"] == ward and r["issued_on"][:7] in months)
    return path, f"Building permits, {ward} ward, Q{quarter} 2025"


def main() -> None:
    home = Path(os.environ.setdefault("DRL_HOME", str(ROOT / ".drl-demo"))).resolve()
    os.environ["DRL_HOME"] = str(home)
    os.environ.setdefault("DRL_PASSPHRASE", "demo-only-passphrase")
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["DRL_BROKER_URL"] = url
    try:
        broker = start_broker(dict(os.environ), port=port, log=home / "broker.log")
    except BrokerDidNotStart as exc:
        sys.exit(f"broker did not start; see {home / 'broker.log'}: {str(exc)[-300:]}")
    try:
        with BrokerClient(url, timeout=5) as probe:
            health = probe.health()
        say(
            "1.",
            f"The data bureau runs the broker at {url} on the embedded chain "
            f"(chain id {health.chain_id}, block {health.block}, "
            f"{health.log_size} signed actions in the flow log so far).",
        )

        fresh = not have("permits-office")
        if fresh:
            say(
                "2.",
                "Three organisations create identities on their own machines: a signing key "
                "and an encryption key each, encrypted under their passphrase. The bureau onboards "
                "them on chain.",
            )
            drl(
                "member",
                "new",
                "permits-office",
                "--kind",
                "department",
                "--name",
                "District Planning Office",
            )
            drl(
                "member",
                "new",
                "solar-coop",
                "--kind",
                "enterprise",
                "--name",
                "Harbour Solar Cooperative",
            )
            drl(
                "member", "new", "dpa", "--kind", "regulator", "--name", "Data Protection Authority"
            )
            for handle in ("permits-office", "solar-coop", "dpa"):
                drl("admin", "onboard", handle)
        else:
            say(
                "2.",
                "The three members from the last run are already onboarded; the story "
                "continues on the same chain.",
            )

        workdir = home / "work"
        workdir.mkdir(exist_ok=True)
        if fresh:
            source, title, extra = SAMPLE, "District building permits 2025", []
            rows = sum(1 for _ in SAMPLE.open()) - 1
            say(
                "3.",
                f"The planning office prepares its permit register ({rows:,} rows). Nobody fills "
                "a form: frictionless infers a Table Schema from the file for the office to "
                "review (it keeps its own, stricter one), then validates every row against it "
                "— the quality report whose digest the office will sign.",
            )
            drl("dataset", "schema", str(SAMPLE))
            drl("dataset", "check", str(SAMPLE), "--schema", str(SCHEMA))
            say(
                "",
                "It registers the register with its labels (EU data themes, keywords, a monthly "
                "update promise): its client encrypts the file and signs the registration with "
                "the quality summary; the broker only ever sees ciphertext.",
            )
        else:
            source, title = next_extract(workdir)
            extra = ["--derived-from", "1"]
            say(
                "3.",
                f"The office registers a derived extract, {title!r}, as a new certificate "
                "whose lineage points at the full register.",
            )
        registered = json.loads(
            drl(
                "dataset",
                "register",
                str(source),
                "--as",
                "permits-office",
                "--title",
                title,
                "--schema",
                str(SCHEMA),
                *LABELS,
                *extra,
                "--json",
                show=False,
            )
        )
        dataset_id = str(registered["id"])
        print(
            f"   $ drl dataset register {source.name} --as permits-office --title {title!r} "
            f"--schema {SCHEMA.name} {' '.join(LABELS)} {' '.join(extra)}".rstrip()
        )
        quality = registered["metadata"]["quality"]
        print(
            f"     dataset #{dataset_id}, content hash {registered['content_hash'][:18]}…, "
            f"quality: {quality['rows']} rows, {quality['errors']} errors, report "
            f"{quality['report_sha256'][:18]}… (signed); "
            f"tx {registered['registered_tx'][:18]}…"
        )
        drl("dataset", "list", "--as", "solar-coop")

        say(
            "4.",
            "The cooperative asks for access on the standard request form: its purpose (free "
            "text and a category), the legal basis, how long it keeps the data after the grant, "
            "where it processes it, for 30 days and 3 uses.",
        )
        request = json.loads(
            drl(
                "access",
                "request",
                dataset_id,
                "--as",
                "solar-coop",
                "--purpose",
                "rooftop solar potential study",
                "--days",
                "30",
                "--uses",
                "3",
                *FORM,
                "--json",
                show=False,
            )
        )
        print(
            f"   $ drl access request {dataset_id} --as solar-coop --purpose 'rooftop solar "
            f"potential study' --days 30 --uses 3 {' '.join(FORM)}\n"
            f"     request #{request['id']}: pending"
        )

        say(
            "5.",
            "The office approves: its client re-wraps the data key to the cooperative's "
            "public key (read from the chain) and signs the grant, which the broker relays.",
        )
        drl("access", "approve", str(request["id"]), "--as", "permits-office")

        say(
            "6.",
            "The cooperative downloads. The broker checks the grant on chain and records "
            "one use before streaming ciphertext; the client decrypts, verifies the content hash "
            "registered on chain, and signs a delivery receipt.",
        )
        out = workdir / f"received-{dataset_id}.csv"
        drl("dataset", "fetch", dataset_id, "--as", "solar-coop", "-o", str(out))
        same = out.read_bytes() == source.read_bytes()
        print(f"     received file identical to the office's original: {same}")
        if not same:
            sys.exit("demo failed: received bytes differ")

        say(
            "7.",
            "The cooperative finds a problem in what it received and files a signed quality "
            "issue. The office corrects its data and registers the next version, linked on chain "
            "to the previous one (grants do not carry over: consumers see the newer version and "
            "ask again), then answers the issue: fixed in that version.",
        )
        lines = source.read_text().splitlines(keepends=True)
        last = str(len(lines))
        problem = "the last permit is a test entry, not a real permit"
        issue = json.loads(
            drl(
                "issue", "report", dataset_id, "--as", "solar-coop", "--fields", "permit_id",
                "--rows", last, "--problem", problem, "--json", show=False,
            )
        )  # fmt: skip
        print(
            f"   $ drl issue report {dataset_id} --as solar-coop --fields permit_id --rows {last} "
            f"--problem {problem!r}\n     issue #{issue['id']}: open"
        )
        corrected = workdir / f"corrected-{dataset_id}.csv"
        corrected.write_text("".join(lines[:-1]))  # the office removes that row
        newer = json.loads(
            drl(
                "dataset", "update", dataset_id, str(corrected), "--as", "permits-office",
                "--json", show=False,
            )
        )  # fmt: skip
        print(
            f"   $ drl dataset update {dataset_id} {corrected.name} --as permits-office\n"
            f"     dataset #{newer['id']}, next version of #{dataset_id} (previousVersion on "
            f"chain), quality {newer['metadata']['quality']['rows']} rows, "
            f"{newer['metadata']['quality']['errors']} errors"
        )
        drl(
            "issue", "answer", str(issue["id"]), "--as", "permits-office", "--verdict", "fixed",
            "--fixed-in", str(newer["id"]), "--reason", "the test entry is removed",
        )  # fmt: skip
        drl("dataset", "show", dataset_id, "--as", "solar-coop")
        say(
            "",
            "The quality score follows from signed, logged records only: the validation "
            "summary, the freshness promise kept, the issues upheld or left open "
            "(docs/standards.md).",
        )
        drl("dataset", "quality", dataset_id, "--as", "solar-coop")

        say(
            "8.",
            "The bureau anchors the flow log's tree head on chain and mints sharing credits "
            "for the anchored delivery.",
        )
        drl("admin", "anchor")
        drl("credits")

        say(
            "9.",
            "The data protection authority verifies the broker on its own machine: it reads the "
            "raw signed records, checks every signature, recomputes the log against the "
            "broker-signed checkpoint and every root anchored on chain, matches chain events to "
            "signed records both ways, and keeps the checkpoint (the next run starts from it). "
            "Then it traces the dataset from what it verified.",
        )
        drl("verify", "--as", "dpa")
        drl("trace", dataset_id, "--as", "dpa")
        say("", "It recomputes the dataset's quality score from the records it verified.")
        drl("dataset", "quality", dataset_id, "--as", "dpa", "--verify")
        say(
            "",
            "With this embedded chain the DPA reads the chain through the broker's relay, as the "
            "note says; in a consortium each member sets DRL_CHAIN_URL to its own node.",
        )
        say(
            "Done.",
            f"State is in {home}. Reproduce by hand: `DRL_HOME={home} drl serve` in one "
            "terminal, the commands above in another (with DRL_BROKER_URL=http://127.0.0.1:8686).",
        )
    finally:
        stop_broker(broker, timeout=30)
    demo_only = os.environ["DRL_PASSPHRASE"] == "demo-only-passphrase"  # noqa: S105 (the demo's)
    unlock = "DRL_PASSPHRASE=demo-only-passphrase " if demo_only else ""
    drl_path = os.path.relpath(DRL[0], Path.cwd())
    print(
        "\n\033[1mSee it in the console:\033[0m with `drl serve` running as above, open the data "
        "protection authority's console on this state and follow the link it prints:\n"
        f"   {unlock}DRL_HOME={home} DRL_BROKER_URL=http://127.0.0.1:8686 {drl_path} console "
        "--as dpa"
    )


if __name__ == "__main__":
    main()
