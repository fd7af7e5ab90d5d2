"""Mutation testing of the pure modules and the signature check: ``make mutation``.

mutmut changes each module in small ways (an operator, a constant, a
condition, a removed argument) and runs the module's own test file against
every change. A change no test notices is a behaviour nothing pins down.
Each module's score is killed / mutants; survivors known to be equivalent
(no input can tell them from the original) are listed in :data:`EQUIVALENT`
with why, and shown but not counted. The run fails when a module scores
below :data:`TARGET` or a survivor is neither killed nor explained.

    python -m tests.mutation [MODULE ...]      # default: every module below

Each module runs in a scratch copy of the repository (mutmut writes its
mutants beside the code); nothing in the working tree changes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.90

# The layer of each module below that is not in gateway/core/.
LAYERS = {"chart": "web", "signature": "web", "twiml": "web", "twilioapi": "messaging"}
# Module -> the test file that must pin it down on its own.
MODULES = {
    "accounts": "tests/core/test_accounts.py",
    "chart": "tests/web/test_chart.py",
    "checkup": "tests/core/test_checkup.py",
    "compliance": "tests/core/test_compliance.py",
    "consent": "tests/core/test_consent.py",
    "imports": "tests/core/test_imports.py",
    "keys": "tests/core/test_keys.py",
    "keywords": "tests/core/test_keywords.py",
    "ledger": "tests/core/test_ledger.py",
    "masking": "tests/core/test_masking.py",
    "messages": "tests/core/test_messages.py",
    "numbers": "tests/core/test_numbers.py",
    "ratelimit": "tests/core/test_ratelimit.py",
    "retries": "tests/core/test_retries.py",
    "revocation": "tests/core/test_revocation.py",
    "scope": "tests/core/test_scope.py",
    "segments": "tests/core/test_segments.py",
    "signature": "tests/web/test_signature.py",
    "smstemplates": "tests/core/test_smstemplates.py",
    "stats": "tests/core/test_stats.py",
    "timestamps": "tests/core/test_timestamps.py",
    "twilioapi": "tests/messaging/test_twilioapi.py",
    "twiml": "tests/web/test_twiml.py",
}

# Survivors no test can kill, by mutmut's name for them, and why. Keep it short and true.
_CODEC = "codec names are case-insensitive: 'UTF-8' is 'utf-8'"
_WHY_DEFAULT = (
    "unreachable default: every reason libphonenumber gives for an impossible number has its own "
    "entry (test_every_impossible_length_has_its_own_reason)"
)
_UNRESERVED = "X is an unreserved character: quote() never escapes it, so adding it to safe changes nothing"
EQUIVALENT: dict[str, str] = {
    "gateway.web.chart.x_axis_ticks__mutmut_16": "ceil(a / b) <= n exactly when a / b <= n for a whole number n",
    "gateway.web.chart.x_bar_chart__mutmut_8": "axis_ticks(0) and axis_ticks(1) are both [0, 1]",
    "gateway.core.consent.xǁGrantǁdetail__mutmut_2": "ensure_ascii=None is falsy, as False is",
    "gateway.core.consent.x_timeline__mutmut_42": "a grant's position never equals a revocation's: < and <= agree",
    "gateway.core.keys.x_new_key__mutmut_2": "token_urlsafe(None) draws secrets.DEFAULT_ENTROPY bytes, which is 32",
    "gateway.core.keys.x_hash_key__mutmut_4": _CODEC,
    "gateway.core.ledger.x__json__mutmut_3": "ensure_ascii=None is falsy, as False is",
    "gateway.core.ledger.x__json__mutmut_12": _CODEC,
    "gateway.core.messages.x_storable__mutmut_2": "replacing NUL in a text without one returns the same text",
    "gateway.core.messages.x_unstorable__mutmut_7": _CODEC,
    "gateway.core.numbers.x_problem__mutmut_14": "phonenumbers.parse's region defaults to None",
    "gateway.core.numbers.x_problem__mutmut_21": _WHY_DEFAULT,
    "gateway.core.numbers.x_problem__mutmut_23": _WHY_DEFAULT,
    "gateway.core.numbers.x_problem__mutmut_24": _WHY_DEFAULT,
    "gateway.core.numbers.x_problem__mutmut_25": _WHY_DEFAULT,
    "gateway.core.revocation.x_business_days_between__mutmut_1": "with end == start both branches count 0 days",
    "gateway.web.signature.x__raw_target__mutmut_10": "'XXXX', like '', does not start with '/': the same fallback",
    "gateway.web.signature.x__raw_target__mutmut_29": _UNRESERVED,
    "gateway.web.signature.x__raw_target__mutmut_50": _UNRESERVED,
    "gateway.messaging.twilioapi.x_retry_after__mutmut_15": "response headers are a case-insensitive mapping",
    "gateway.messaging.twilioapi.x_retry_after__mutmut_16": "response headers are a case-insensitive mapping",
}

DETECTED = {"killed", "timeout", "caught by type check", "segfault"}


def module_path(name: str) -> str:
    """Where module ``name`` is, from the checkout's root: gateway/<layer>/<name>.py."""
    return f"gateway/{LAYERS.get(name, 'core')}/{name}.py"


LINE = re.compile(r"^\s+(gateway\.\S+): (.+)$")
SPINNER = re.compile("[\u2800-\u28ff]")  # mutmut's progress frames


def run_module(name: str, tests: str, work: Path) -> dict[str, str]:
    """mutmut on the module's file against ``tests`` alone, in a scratch copy; mutant -> status."""
    copy = work / name
    copy.mkdir()
    for part in ("gateway", "tests", "config"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    setup = (ROOT / "setup.cfg").read_text()
    setup += (
        "\n[mutmut]\nsource_paths = gateway\n"
        f"only_mutate = {module_path(name)}\n"
        "also_copy = config\n"
        f"pytest_add_cli_args_test_selection = {tests}\n"
        # One argument a line (mutmut splits on newlines); the slow tests need a whole checkout (gunicorn).
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q\n    -m\n    not slow\n"
    )
    (copy / "setup.cfg").write_text(setup)
    mutmut = [sys.executable, "-m", "mutmut"]
    run = subprocess.run([*mutmut, "run"], cwd=copy, capture_output=True, text=True)
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=copy, capture_output=True, text=True)
    found = {m.group(1): m.group(2).strip() for line in results.stdout.splitlines() if (m := LINE.match(line))}
    if not found or "not checked" in found.values():
        output = (run.stdout + run.stderr).replace("\r", "\n").splitlines()
        tail = [line for line in output if line.strip() and not SPINNER.search(line)][-20:]
        raise SystemExit(f"mutation: mutmut did not test every mutant of {name}:\n" + "\n".join(tail))
    return found


def show(name: str, mutant: str, work: Path) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant], cwd=work / name, capture_output=True, text=True
    )
    return "\n".join(
        line for line in shown.stdout.splitlines() if line.startswith(("-", "+")) and line[:3] not in ("---", "+++")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="MODULE", help="modules to test (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"not a module under mutation testing: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    chosen = args.modules or list(MODULES)
    failed = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="gateway-mutation-") as scratch:
        work = Path(scratch)
        for name in chosen:
            began = time.monotonic()
            statuses = run_module(name, MODULES[name], work)
            counted = {m: s for m, s in statuses.items() if s != "skipped"}
            equivalent = [m for m, s in counted.items() if s not in DETECTED and m in EQUIVALENT]
            unexplained = [m for m, s in counted.items() if s not in DETECTED and m not in EQUIVALENT]
            killed = sum(s in DETECTED for s in counted.values())
            total = len(counted)
            score = killed / max(1, total - len(equivalent))
            rows.append((name, total, killed, len(equivalent), len(unexplained), score, time.monotonic() - began))
            print(f"{name}: {killed}/{total - len(equivalent)} killed ({score:.0%})", file=sys.stderr)
            for mutant in unexplained:
                print(f"  survived ({counted[mutant]}): {mutant}\n{_indent(show(name, mutant, work))}", file=sys.stderr)
            for mutant in equivalent:
                print(f"  equivalent: {mutant}: {EQUIVALENT[mutant]}", file=sys.stderr)
            if score < TARGET or unexplained:
                failed.append(name)
    print(f"\n{'module':<14} {'mutants':>8} {'killed':>7} {'equiv.':>7} {'survived':>9} {'score':>6} {'secs':>6}")
    for name, total, killed, equivalent, survived, score, seconds in rows:
        print(f"{name:<14} {total:>8} {killed:>7} {equivalent:>7} {survived:>9} {score:>6.0%} {seconds:>6.0f}")
    if failed:
        print(f"\nbelow {TARGET:.0%} or with unexplained survivors: {', '.join(failed)}")
        return 1
    print(f"\nevery module at or above {TARGET:.0%}, every survivor explained")
    return 0


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
