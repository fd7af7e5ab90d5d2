"""gateway audit: verify the ledger, write and check per-account proofs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ..core import ledger
from .root import account_sids, cli, open_store


@cli.group()
def audit() -> None:
    """Check the integrity of the compliance records."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_verify(as_json: bool) -> None:
    """Walk the event ledger's hash chain and report the first broken event.

    Exits 0 when every event's hash and link are intact and the chain ends at
    the recorded head; exits 1 naming the first broken event otherwise (an
    edited, deleted or inserted row).
    """
    result = open_store().verify_ledger()
    click.echo(json.dumps(result.as_dict()) if as_json else result.summary())
    if not result.ok:
        raise SystemExit(1)


@audit.command("proof")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="NAME_OR_SID",
    help="The account(s) the proof is for: their events whole, every other event by its digest. "
    "Repeatable. Without it, every event whole.",
)
@click.option(
    "--output", type=click.File("w", encoding="utf-8"), default="-", help="Write it here [default: standard output]."
)
def audit_proof(accounts: Sequence[str], output: Any) -> None:
    """Write a proof of the ledger for an account's auditor: one JSON object a line, the head first.

    The auditor checks it with `gateway audit check-proof FILE`, anywhere,
    without the database: every link of the whole chain and the contents of
    their own events, never seeing another account's fields. Writes nothing
    to the database.
    """
    store = open_store()
    sids = account_sids(store, accounts) if accounts else None
    for record in store.ledger_proof(sids):
        output.write(json.dumps(record, ensure_ascii=False) + "\n")


@audit.command("check-proof")
@click.argument("proof", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_check_proof(proof: str, as_json: bool) -> None:
    """Check a ledger proof (from `gateway audit proof` or GET /v1/audit/proof) without any database.

    Exits 0 when the chain is whole up to the head the proof names, 1 naming
    the first broken event otherwise, 2 when PROOF is not a proof.
    """
    try:
        with click.open_file(proof, encoding="utf-8") as handle:
            records = (json.loads(line) for line in handle if line.strip())
            result = ledger.verify_proof(records)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {proof}: {exc.strerror}", param_hint="PROOF") from None
    except (ValueError, KeyError, TypeError) as exc:
        message = str(exc) if str(exc).startswith("not a ledger proof") else f"not a ledger proof: {exc}"
        raise click.UsageError(message) from None
    click.echo(json.dumps(result.as_dict()) if as_json else result.summary())
    if not result.ok:
        raise SystemExit(1)
