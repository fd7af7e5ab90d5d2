"""The README tells the truth: its samples are real output, its commands exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gateway.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def documented_commands() -> list[str]:
    """Every ``gateway ...`` command line the README shows, in code blocks or inline code."""
    lines = []
    for fence, block in re.findall(r"```(\w*)\n(.*?)```", README, re.S):
        prompt = r"\$ " if fence != "sh" else r"(?:\$ )?"  # a plain block's other lines are output
        block = block.replace("\\\n", " ")
        lines += re.findall(rf"^{prompt}(gateway [^\n#;|&]*)", block, re.M)
    lines += re.findall(r"`(gateway [^`]*)`", README)
    return sorted({line.strip() for line in lines})


def parse(words: list[str]) -> None:
    """Resolve a command line through the click groups as ``gateway`` would, without running it."""
    command: click.Command = cli
    path = ["gateway"]
    while isinstance(command, click.Group):
        assert words, f"`{' '.join(path)}` is a group, not a command"
        name, *words = words
        command = command.get_command(click.Context(command), name)
        assert command is not None, f"no command {name!r} under `{' '.join(path)}`"
        path.append(name)
    with command.make_context(" ".join(path), words):
        pass  # leaving closes what parsing opened (a FILE argument)


def placeholders(words: list[str]) -> list[str]:
    """README placeholders (``ID``, ``FILE.csv``, ``[--format csv|json]``) replaced by values that parse."""
    readme = str(ROOT / "README.md")  # any file that exists
    values = {"ID": "1", "FILE": "x.csv", "FILE.csv": readme, "PERSON": "Dana", "WHY": "dup", "NAME": "n"}
    values |= {"URL": "sqlite:///x.db", "+1...": "+14155550100"}
    out = []
    for word in words:
        word = word.strip("[]")
        if "|" in word:
            word = word.split("|")[0]
        out.append(values.get(word, word))
    return out


COMMANDS = documented_commands()


def test_the_readme_documents_commands():
    assert len(COMMANDS) >= 20, COMMANDS


@pytest.mark.parametrize("line", COMMANDS)
def test_every_documented_command_parses(line):
    words = placeholders(shlex.split(line)[1:])
    if "..." in words:
        words = words[: words.index("...")]
    try:
        parse(words)
    except click.exceptions.MissingParameter:
        pass  # the README names a command and some of its options, not every required one
    except click.BadOptionUsage as exc:
        if not (exc.message.endswith("requires an argument.") and words[-1] == exc.option_name):
            raise  # prose may name an option without its value: `gateway worker --interval`
    except click.UsageError as exc:
        pytest.fail(f"README shows `{line}`, which gateway refuses: {exc.format_message()}")


@pytest.mark.slow
def test_samples_are_real_output(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tests.readme_samples", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_sample_that_drifted_is_named(tmp_path):
    edited = tmp_path / "README.md"
    edited.write_text(README.replace("ledger intact: 7 events checked", "ledger intact: 8 events checked"))
    result = subprocess.run(
        [sys.executable, "-m", "tests.readme_samples", "--check", "--readme", str(edited)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    assert "sample 'audit-verify' differs from a real run" in result.stderr
    assert "-ledger intact: 8 events checked" in result.stderr
    assert "make readme" in result.stderr


def _headings() -> set[str]:
    return {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}


def _cited_sections() -> list[tuple[str, str]]:
    """Every README section a shipped file's comment points to: ``see README, "X"`` or ``see "X" in the README``."""
    cited = []
    shipped = [*(ROOT / "gateway" / "settings" / "defaults").rglob("*.toml"), *(ROOT / "config").glob("*.toml")]
    for path in sorted(shipped):
        text = path.read_text()
        for pattern in (r'README, "([^"]+)"', r'"([^"]+)" in the README'):
            cited += [(path.relative_to(ROOT).as_posix(), name) for name in re.findall(pattern, text)]
    return cited


@pytest.mark.parametrize(("path", "section"), _cited_sections())
def test_a_readme_section_a_shipped_file_points_to_exists(path, section):
    assert section in _headings(), f"{path} points to the README section {section!r}, which does not exist"


def test_shipped_files_point_to_readme_sections():
    assert len(_cited_sections()) >= 4  # the defaults cite what they rely on; the test above checks each
