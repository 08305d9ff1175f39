"""The docs' code is taken from example files that the test suite runs, verbatim."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from conftest import ROOT

SNIPPET = re.compile(r"<!-- snippet: (\S+)#(\S+) -->\n```python\n(.*?)\n```", re.DOTALL)


def region(path: str, name: str) -> str:
    source = (ROOT / path).read_text(encoding="utf-8")
    start, end = f"# [docs:{name}]\n", f"# [/docs:{name}]"
    assert start in source and end in source, f"{path} has no docs region {name!r}"
    return textwrap.dedent(source.split(start, 1)[1].split(end, 1)[0]).rstrip()


def test_every_snippet_matches_its_region_in_a_tested_example():
    tested = (ROOT / "tests" / "test_examples.py").read_text(encoding="utf-8")
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert {p.stem for p in pages} >= {"quickstart", "concepts", "composing_graphs",
                                       "backends", "training_from_traces", "scaling_out"}
    found = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert text.count("<!-- snippet:") == len(SNIPPET.findall(text)), \
            f"{page.name}: a snippet marker without its python block"
        for path, name, code in SNIPPET.findall(text):
            found += 1
            assert Path(path).name in tested, f"{path} is not run by tests/test_examples.py"
            assert code == region(path, name), f"{page.name}: snippet {path}#{name} is stale"
    assert found >= 5
