from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_import_and_inspect_example_runs_twice(tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "import_and_inspect.py"),
               "--db", f"sqlite:///{tmp_path / 'ex.db'}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "50 case(s) added" in first.stdout
    assert "recorded episode 1 with 3 turns" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "0 case(s) added, 50 already stored" in second.stdout
    assert "recorded episode 2" in second.stdout
