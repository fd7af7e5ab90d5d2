"""gateway templates: the SMS templates and their tokens."""

from __future__ import annotations

from .options import FORMAT
from .output import emit
from .root import cli, load_settings


@cli.group("templates")
def templates_group() -> None:
    """SMS templates (the folder templates_dir names, one TOML file each)."""


@templates_group.command("list")
@FORMAT
def templates_list(fmt: str) -> None:
    """List templates with their tokens; loading fails on any invalid template, naming the file."""
    configured = load_settings()
    rows = [
        {"title": t.title, "tokens": ", ".join(t.tokens), "characters": len(t.body), "file": f"{t.name}.toml"}
        for t in configured["TEMPLATES"].values()
    ]
    emit(rows, ["title", "tokens", "characters", "file"], fmt)
