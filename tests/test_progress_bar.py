"""The progress bar's label is plain text."""

from __future__ import annotations

import io

from rich.console import Console

from promed_agents.cli.progress_bar import progress_bar


def test_a_label_is_never_markup_or_an_emoji():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bar(console) as progress:
        progress.add_task("consulting (fake:question: any fever? [bold]x[/])", total=2)
        progress.refresh()
    text = out.getvalue()
    assert "fake:question: any fever? [bold]x[/]" in text
    assert "\u2753" not in text  # the emoji rich would make of :question:
