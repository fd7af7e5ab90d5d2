"""The layers are packages and ``make lint`` keeps them so: import-linter's contracts (in setup.cfg) on the
tree as it is, and on a copy with one deliberately bad module each, which must break the contract it breaks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support.constants import ROOT

LINT = [str(Path(sys.executable).with_name("lint-imports"))]  # import-linter's command, beside this Python
LAYERS = "cli above web above messaging above settings above store above core BROKEN"


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy's gateway, not the checkout's
    return subprocess.run(
        [*LINT, "--config", str(tree / "setup.cfg"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_contract(tmp_path):
    shutil.copytree(ROOT / "gateway", tmp_path / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path)
    result = lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("bad", "broken", "named"),
    [
        ({"core/bad.py": "from flask import Flask\n"}, "the core imports neither Flask nor a database BROKEN", "flask"),
        ({"core/bad.py": "from ..store import Store\n"}, LAYERS, "gateway.core.bad -> gateway.store"),
        ({"messaging/bad.py": "from ..web import console\n"}, LAYERS, "gateway.messaging.bad -> gateway.web.console"),
        ({"store/bad.py": "from .. import settings\n"}, LAYERS, "gateway.store.bad -> gateway.settings"),
        (
            {"core/one.py": "from . import two\n", "core/two.py": "from . import one\n"},
            "no import cycle between the modules of any package BROKEN",
            "gateway.core",
        ),
    ],
    ids=["core-imports-flask", "core-imports-store", "messaging-imports-web", "store-imports-settings", "a-cycle"],
)
def test_a_module_that_crosses_a_layer_or_closes_a_cycle_fails_lint(tmp_path, bad, broken, named):
    shutil.copytree(ROOT / "gateway", tmp_path / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path)
    for name, text in bad.items():
        (tmp_path / "gateway" / name).write_text(text)
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout and named in result.stdout, result.stdout
