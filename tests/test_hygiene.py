"""Hygiene: no unsafe deserialisation or code execution in the package, no
remote code, database passwords never printed."""

from __future__ import annotations

import ast

import pytest

from conftest import ROOT
from helpers import run

PACKAGE = [p for folder in ("promed_agents", "graphs", "trainers", "storage")
           for p in (ROOT / folder).rglob("*.py")]


def calls(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and \
                isinstance(func.value, ast.Name) else ""
            yield owner, name, {k.arg: k.value for k in node.keywords}


def test_no_unsafe_deserialisation_or_code_execution():
    found = []
    for path in PACKAGE:
        for owner, name, keywords in calls(path):
            if name in {"eval", "exec"} and owner == "" \
                    or owner in {"pickle", "marshal", "dill"} and name.startswith("load") \
                    or owner == "yaml" and name == "load" \
                    or owner == "torch" and name == "load" and not (
                        isinstance(keywords.get("weights_only"), ast.Constant)
                        and keywords["weights_only"].value is True):
                found.append(f"{path.relative_to(ROOT)}: {owner}.{name}")
    assert found == []


def test_remote_code_is_never_trusted():
    trusted = [f"{path.relative_to(ROOT)}: {name}" for path in PACKAGE
               for _, name, keywords in calls(path)
               if isinstance(keywords.get("trust_remote_code"), ast.Constant)
               and keywords["trust_remote_code"].value is True]
    assert trusted == []


@pytest.mark.parametrize("command", [
    ["cases", "list"], ["consult", "--cases", "1", "--doctor", "fake:answer: A"],
    ["eval", "--cases", "1", "--doctor", "fake:answer: A"], ["report"],
    ["traces", "list"], ["train", "grpo", "--output", "/nonexistent/x"]])
def test_a_database_password_is_never_printed(command):
    result = run(*command, "--db", "postgresql://alice:s3cr3t@127.0.0.1:1/promed")
    assert result.exit_code != 0
    assert "s3cr3t" not in result.output + result.stderr
    assert "alice:***@127.0.0.1:1" in result.stderr
