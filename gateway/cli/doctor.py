"""gateway doctor: the deployment checked against the rules it must follow."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from ..core import checkup, revocation
from ..store import StoreError
from .root import cli, load_settings, open_store


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
@click.option(
    "--env",
    type=click.Choice(["dev", "sandbox", "live"]),
    help="Judge the deployment as this environment would (its senders, and in sandbox and live every finding "
    "as a failure that dev shows as 'before going live') [default: GATEWAY_ENV].",
)
def doctor(fmt: str, env: str | None) -> None:
    """Check the deployment against the rules it must follow.

    The FCC's per-se revocation words in every number's stop keywords; a STOP
    confirmation that only confirms (no link, one plain text of at most 160
    GSM-7 characters); a HELP reply that names the brand and a contact (CTIA);
    the opt-out scope against the revoke-all rule (in force from 2027-01-31);
    revocation candidates past their due date; the ledger's verification;
    senders without a status callback; an SQLite file on a network
    filesystem; on PostgreSQL, server settings that lose acknowledged
    commits in a crash (fsync or full_page_writes off) and this machine's
    clock against the server's. One line per finding, with its rule and how
    to fix it. In dev, what must be settled before going live (a HELP
    contact, the revoke-all scope) is listed as that; `--env live` shows what
    live would say. Reads only. Exits 1 when any finding is a failure.
    """
    configured = load_settings({"ENV": env} if env else None)
    today = datetime.now(UTC).date()
    findings = checkup.configuration_findings(configured, today)
    try:
        store = open_store()
        detector = configured["REVOCATION"]
        candidates = revocation.with_deadlines(store.revocation_candidates("open"), detector.business_days_to_honour)
        findings += checkup.candidate_findings(
            [c for c in candidates if c["overdue"]], detector.business_days_to_honour
        )
        result = store.verify_ledger()
        findings += checkup.ledger_findings(result.ok, result.summary())
        findings += checkup.durability_findings(store.unsafe_settings())
        findings += checkup.filesystem_findings(store.network_filesystem(), store.describe())
        findings += checkup.clock_findings(store.clock_offset(), configured)
    except StoreError as exc:
        findings += checkup.database_findings(str(exc))
    findings = checkup.for_environment(findings, configured["ENV"])
    failed = any(finding.level == checkup.FAIL for finding in findings)
    if fmt == "json":
        click.echo(json.dumps({"ok": not failed, "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            click.echo(finding.line())
        before = sum(finding.level == checkup.BEFORE_LIVE for finding in findings)
        settle = f" {before} to settle before going live (see them with --env live)." if before else ""
        click.echo(f"{len(findings)} finding(s); " + ("failures above." if failed else "no failure.") + settle)
    if failed:
        raise SystemExit(1)
