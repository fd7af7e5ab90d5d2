"""``make mutation``: the script that runs mutmut on each pure module against its own tests."""

import re
import subprocess
import sys

import pytest

from . import mutation
from .support.constants import ROOT


def run(*modules: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.mutation", *modules], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_every_module_under_mutation_testing_has_its_own_test_file():
    for module, tests in mutation.MODULES.items():
        assert (ROOT / mutation.module_path(module)).is_file(), module
        layer = mutation.LAYERS.get(module, "core")
        assert tests == f"tests/{layer}/test_{module}.py" and (ROOT / tests).is_file(), module


def test_every_listed_equivalent_names_a_module_under_test_and_says_why():
    for mutant, why in mutation.EQUIVALENT.items():
        assert mutant.split(".")[2] in mutation.MODULES and "__mutmut_" in mutant, mutant
        assert len(why) > 20, mutant


def test_an_unknown_module_is_refused_naming_the_known_ones():
    result = run("twiml", "nosuchmodule")
    assert result.returncode == 2
    assert "not a module under mutation testing: nosuchmodule (known: accounts, chart," in result.stderr


@pytest.mark.slow
def test_a_module_is_mutated_tested_and_scored_without_touching_the_working_tree():
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    result = run("twiml")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^twiml: (\d+)/\1 killed \(100%\)$", result.stderr, re.MULTILINE), result.stderr
    assert "every module at or above 90%, every survivor explained" in result.stdout
    assert subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout == before
