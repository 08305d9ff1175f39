"""The training log: each logged step's metrics in a JSON Lines file and in the store.

case -> ... -> **MCTS-SFT / GRPO metrics** -> training curves in reports (evaluation)

:class:`TrainingLog` is a transformers ``TrainerCallback``. Each time the trainer logs
(every ``logging_steps``), the numeric values (loss, reward parts, SIG, accuracy,
questions per episode, KL, entropy, ...) are appended to ``training_log.jsonl`` in the
output folder and saved as that step's row of the run's ``training_metrics`` in the
store; a resumed run that logs a step again replaces its row. The end-of-training summary
(runtime, mean loss) goes to the file only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

LOG_FILE = "training_log.jsonl"


class TrainingLog(TrainerCallback):
    def __init__(self, folder: str | Path, store: TraceStore | None = None,
                 experiment_id: int | None = None) -> None:
        self.path = Path(folder) / LOG_FILE
        self.store, self.experiment_id = store, experiment_id

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        numbers = {k: float(v) for k, v in logs.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"step": state.global_step, **numbers}) + "\n")
        if self.store is not None and self.experiment_id is not None and \
                "train_runtime" not in numbers:
            self.store.save_training_metrics(self.experiment_id, state.global_step, numbers)
