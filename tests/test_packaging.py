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
            "promed_agents.graphs, promed_agents.trainers, promed_agents.sig, "
            "promed_agents.agents\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_trainers_package_loads_its_torch_names_on_first_use(tmp_path):
    code = ("import sys, promed_agents.trainers as t\n"
            "print('torch' in sys.modules, set(t.__all__) <= set(dir(t)))\n"
            "t.train_grpo, t.DoctorSFTConfig\n"
            "print('torch' in sys.modules)")
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]


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


# Each folder may import only the folders before it (the data path, bottom up). Imports
# under ``if TYPE_CHECKING:`` are annotations only and create no dependency.
LAYERS = ["promed_agents", "backends", "sig", "agents", "graphs", "storage", "trainers",
          "runs", "cli"]
FOLDERS = {"promed_agents": ROOT / "promed_agents", "backends": ROOT / "promed_agents" / "backends",
           "sig": ROOT / "promed_agents" / "sig", "agents": ROOT / "promed_agents" / "agents",
           "graphs": ROOT / "graphs", "storage": ROOT / "storage", "trainers": ROOT / "trainers",
           "runs": ROOT / "promed_agents" / "runs", "cli": ROOT / "promed_agents" / "cli"}


def _layer_of_import(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "promed_agents":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "promed_agents"


def _layer_of_file(path: Path) -> str:
    return next(layer for layer in reversed(LAYERS) if path.is_relative_to(FOLDERS[layer])
                and (layer != "promed_agents" or path.parent == FOLDERS[layer]
                     or path.parent.name == "data"))


def _runtime_imports(tree: ast.AST) -> list[str]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


def test_folders_only_import_the_folders_below_them():
    """core <- backends <- sig <- agents <- graphs <- storage <- trainers <- runs <- cli,
    and no module imports a module that imports it back."""
    violations = []
    for layer in LAYERS:
        for path in FOLDERS[layer].rglob("*.py"):
            if "versions" in path.parts or _layer_of_file(path) != layer:
                continue
            for name in _runtime_imports(ast.parse(path.read_text())):
                target = _layer_of_import(name)
                if target is not None and LAYERS.index(target) > LAYERS.index(layer):
                    violations.append(f"{path.relative_to(ROOT)} ({layer}) imports {name}")
    assert violations == []


def _module_name(path: Path) -> str:
    for prefix, folder in (("promed_agents.graphs", ROOT / "graphs"),
                           ("promed_agents.storage", ROOT / "storage"),
                           ("promed_agents.trainers", ROOT / "trainers"),
                           ("promed_agents", ROOT / "promed_agents")):
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            return ".".join((prefix, *parts))
    raise AssertionError(path)


def test_no_import_circles():
    modules = {}
    for folder in (ROOT / "promed_agents", ROOT / "graphs", ROOT / "storage",
                   ROOT / "trainers"):
        for path in folder.rglob("*.py"):
            if "versions" not in path.parts:
                modules[_module_name(path)] = path
    graph = {name: {i for i in _runtime_imports(ast.parse(path.read_text()))
                    if i in modules and i != name} for name, path in modules.items()}
    # a package's __init__ re-exports its modules; edges into a package count as edges
    # into the module named, so only module-to-module circles are reported
    packages = {n for n, p in modules.items() if p.name == "__init__.py"}
    circles = []
    for start in graph:
        if start in packages:
            continue
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node] - packages:
                if nxt == start:
                    circles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert circles == []


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
            "import promed_agents.backends, promed_agents.graphs.token_sequence\n"
            "from promed_agents.loader import bundled_sample_path, load_cases\n"
            "print(s.__file__)\n"
            "store = s.TraceStore('sqlite:///w.db')\n"
            "print(store.import_cases(load_cases(bundled_sample_path())).added)")
    result = python(code, tmp_path, PYTHONPATH=str(site))
    assert result.returncode == 0, result.stderr
    location, added = result.stdout.splitlines()
    assert Path(location).is_relative_to(site)
    assert added == "50"
