"""Fine-tune a doctor on consultations it did not have: another doctor's, and a log's.

    python examples/sft_from_any_traces.py [--student local:...] [--steps N] [--out DIR]

Part 1 (distillation): the model-free ``bank:fixed`` doctor consults three cases; its
consultations that acquired a fact train the student by SFT. The teacher returned no
token ids, so each consultation is rendered in the student's chat template and tokens.
Part 2 (imported dialogues): a consultation logged elsewhere (a human doctor's bare
questions, a final answer) is imported as a trace, replayed through the consultation
graph for its facts and SIG, and trains the student the same way. Each trained model is
a plain transformers folder, usable as ``--doctor local:DIR``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from promed_agents.loader import bundled_sample
from promed_agents.runs import (
    ConsultCommandConfig,
    ImportCommandConfig,
    SFTCommandConfig,
    run_consult,
    run_import,
    run_sft,
)
from promed_agents.storage import TraceStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="local:smollm2", help="The model to train.")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", default=None, help="Folder for the store and the models.")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="promed-sft-"))
    store = TraceStore(f"sqlite:///{folder / 'traces.db'}")
    store.import_cases(bundled_sample()[:3])

    # [docs:distill]
    run_consult(store, ConsultCommandConfig(doctor="bank:fixed", cases=3, max_questions=3,
                                            experiment="teacher"))
    distilled = run_sft(store, SFTCommandConfig(
        source="teacher", model=args.student, output=folder / "distilled",
        min_facts=1, max_steps=args.steps, batch_size=2))
    print(f"distilled: {distilled.steps} steps, model local:{distilled.output_dir}")
    # [/docs:distill]

    # [docs:import]
    log = folder / "clinic.jsonl"
    log.write_text(json.dumps({
        "case_id": "imedqa-0", "source": "clinic", "final_answer": "C", "messages": [
            {"role": "doctor", "content": "What did the culture of the joint fluid show?"},
            {"role": "patient", "content": "The culture of joint fluid shows a bacteria."}]})
        + "\n")
    imported = run_import(store, log, ImportCommandConfig(plain_turns=True))
    (episode,) = store.iter_episodes(imported.experiment_id)
    print(f"imported: {[t.text for t in episode.turns]}, facts "
          f"{episode.turns[1].disclosed_fact_ids}, SIG {episode.information_gain:.3f}")
    trained = run_sft(store, SFTCommandConfig(
        source=imported.experiment, model=args.student, output=folder / "from-log",
        max_steps=args.steps, batch_size=1))
    print(f"from the log: {trained.steps} steps, model local:{trained.output_dir}")
    # [/docs:import]
    store.close()


if __name__ == "__main__":
    main()
