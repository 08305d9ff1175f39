"""The progress bar of long CLI work (imports, exports, consultations).

Shown on a terminal only; silent when output is piped or captured (CI, tests).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(console: Console) -> Progress:
    """A transient bar; its label is plain text (a model spec such as
    ``fake:question: ...`` must not turn into markup or an emoji)."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True,
                    disable=not console.is_terminal)


def step_progress(progress: Any, task: Any) -> Any:
    """A transformers ``TrainerCallback`` that moves a rich progress bar with the steps
    (transformers is imported only when training)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress.update(task, completed=state.global_step, total=state.max_steps)

    return ProgressCallback()
