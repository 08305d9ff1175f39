"""Train a doctor from logged consultations: record traces, then SIG-GRPO on them.

    python examples/train_from_traces.py [--doctor SPEC] [--model local:...] [--steps N]

Step 1 records a few consultations in a store, sampled by a local doctor at temperature 1
(top-p 1): the logprobs it records are then exactly those of the distribution it sampled
from, which off-policy training needs (traces sampled otherwise are refused). Step 2
trains the model ``--model`` on those stored consultations, off-policy: the recorded
logprobs are the old logprobs of the clipped importance ratio. The result is a plain
transformers folder, usable as ``--doctor local:DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from promed_agents import bundled_sample_path, load_cases
from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends import resolve_chat_model
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.storage import TraceStore
from promed_agents.trainers.episode_sources import LoggedEpisodes
from promed_agents.trainers.grpo_trainer import DoctorGRPOConfig, train_grpo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", default="local:smollm2",
                        help="Who the traces come from (a local: model).")
    parser.add_argument("--model", default="local:smollm2", help="The model to train.")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", default=None, help="Folder for the store and the model.")
    args = parser.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="promed-traces-"))
    cases = load_cases(bundled_sample_path())[:2]

    # [docs:record]
    store = TraceStore(f"sqlite:///{folder / 'traces.db'}")
    store.import_cases(cases)
    logged = store.create_experiment("logged", "consult")
    doctor = resolve_chat_model(args.doctor)
    context = ConsultationContext(doctor=doctor, max_questions=2, demonstration=True,
                                  doctor_kwargs=doctor_sampling(doctor, max_new_tokens=32,
                                                                temperature=1.0))
    for episode in asyncio.run(arun_consultations(cases * 2, context, experiment_id=logged)):
        store.record_episode(episode)  # token ids and logprobs travel with each turn
    # [/docs:record]

    # [docs:train]
    run = store.create_experiment("offline-grpo", "grpo")
    config = DoctorGRPOConfig(output_dir=str(folder / "doctor"), max_steps=args.steps,
                              num_generations=2, per_device_train_batch_size=2,
                              learning_rate=1e-5, delta=2.0, logging_steps=1,
                              save_strategy="no", report_to="none", disable_tqdm=True)
    result = train_grpo(args.model, cases,
                        LoggedEpisodes(store, [logged]), config, store=store,
                        experiment_id=run)
    for step, metrics in store.training_metrics(run):
        print(f"step {step}: loss {metrics['loss']:.4f}, questions "
              f"{metrics['episodes/questions']:.2f}, accuracy {metrics['episodes/accuracy']:.2f}")
    print(f"trained doctor: local:{result.output_dir}")
    # [/docs:train]
    store.close()


if __name__ == "__main__":
    main()
