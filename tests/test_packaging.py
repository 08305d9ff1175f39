"""The package installs under one namespace, stays light to import, and keeps its layers."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

HEAVY = ("torch", "trl", "transformers", "sqlalchemy", "alembic")


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def test_importing_the_core_loads_no_heavy_library(tmp_path):
    code = ("import sys, promed_agents, promed_agents.case, promed_agents.loader, "
            "promed_agents.partial_view, promed_agents.trace, promed_agents.cli, "
            "promed_agents.graphs\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_folders_import_only_under_the_promed_agents_namespace(tmp_path):
    code = ("import promed_agents.storage as s, promed_agents.graphs as g, "
            "promed_agents.trainers as t; print(s.__file__); print(g.__file__); "
            "print(t.__file__)\n"
            "import importlib.util\n"
            "print([n for n in ('storage', 'graphs', 'trainers') "
            "if importlib.util.find_spec(n) is not None])")
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    storage, graphs, trainers, bare = result.stdout.splitlines()
    assert Path(storage) == ROOT / "storage" / "__init__.py"
    assert Path(graphs) == ROOT / "graphs" / "__init__.py"
    assert Path(trainers) == ROOT / "trainers" / "__init__.py"
    assert bare == "[]"


LAYERS = {"promed_agents": 0, "graphs": 1, "storage": 2, "trainers": 3}
# the CLI sits on top of every layer
CLI_MODULES = {"cli.py", "cli_options.py", "consult_command.py", "shapley_command.py",
               "mcts_command.py", "train_command.py", "grpo_command.py",
               "eval_command.py", "report_command.py"}
NAMES = {"promed_agents.graphs": "graphs", "promed_agents.storage": "storage",
         "promed_agents.trainers": "trainers"}


def _layer_of_import(name: str) -> str | None:
    for prefix, layer in NAMES.items():
        if name == prefix or name.startswith(prefix + "."):
            return layer
    return "promed_agents" if name.split(".")[0] == "promed_agents" else None


def test_layers_only_import_downwards():
    """core <- graphs <- storage <- trainers; the CLI may reach every layer lazily."""
    violations = []
    for layer, rank in LAYERS.items():
        for path in (ROOT / layer).rglob("*.py"):
            if path.name in CLI_MODULES or "versions" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for name in names:
                    target = _layer_of_import(name)
                    if target is not None and LAYERS[target] > rank:
                        violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert violations == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build a wheel from a copy of the tracked tree (nothing is written into the clone)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(work / "dist"), str(source)], check=True, timeout=300)
    (built,) = (work / "dist").glob("promed_agents-*.whl")
    return built


def test_wheel_contains_the_namespaced_packages_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("promed_agents/py.typed", "promed_agents/data/imedqa_sample.jsonl",
                     "promed_agents/data/ATTRIBUTION.md", "promed_agents/storage/models.py",
                     "promed_agents/storage/migrations/env.py",
                     "promed_agents/storage/migrations/script.py.mako",
                     "promed_agents/storage/migrations/versions/0001_initial_schema.py",
                     "promed_agents/storage/migrations/versions/0002_search_nodes.py",
                     "promed_agents/graphs/__init__.py", "promed_agents/trainers/__init__.py",
                     "promed_agents/backends/local_chat_model.py",
                     "promed_agents/graphs/consultation.py"):
        assert expected in names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"storage", "graphs", "trainers", "tests", "examples", "benchmarks"}


def test_installed_wheel_imports_and_migrates(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    code = ("import promed_agents.storage as s\n"
            "import promed_agents.backends, promed_agents.graphs.rollout\n"
            "from promed_agents.loader import bundled_sample_path, load_cases\n"
            "print(s.__file__)\n"
            "store = s.TraceStore('sqlite:///w.db')\n"
            "print(store.import_cases(load_cases(bundled_sample_path())).added)")
    result = python(code, tmp_path, PYTHONPATH=str(site))
    assert result.returncode == 0, result.stderr
    location, added = result.stdout.splitlines()
    assert Path(location).is_relative_to(site)
    assert added == "50"
