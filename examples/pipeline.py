"""The whole data path in Python, top to bottom, on the embedded SmolLM2 (small sizes).

    python examples/pipeline.py     # 3 cases, 1 SFT and 1 GRPO step, into pipeline-run/

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from promed_agents import bundled_sample_path, load_cases, trainers
from promed_agents.agents import doctor_sampling, resolve_doctor
from promed_agents.backends import ChatTokens
from promed_agents.evaluation import per_case, summarize
from promed_agents.graphs import ConsultationContext, checkpoint_serializer, run_consultations
from promed_agents.report import build_report
from promed_agents.sig import PermutationConfig, resolve_scorer
from promed_agents.storage import TraceRecorder, TraceStore, sig_evaluator

SPEC = "local:smollm2"
QUIET = dict(logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True)


def context(doctor_spec: str, evaluator, temperature: float) -> ConsultationContext:
    """Consultations of ``doctor_spec`` with the fact-select patient, 2 questions at most."""
    doctor = resolve_doctor(doctor_spec)
    return ConsultationContext(doctor=doctor, evaluator=evaluator, max_questions=2,
                               demonstration=True, doctor_kwargs=doctor_sampling(
                                   doctor, max_new_tokens=32, temperature=temperature))


def main(cases_count: int = 3, steps: int = 1, out: Path = Path("pipeline-run")) -> None:
    out.mkdir(parents=True, exist_ok=True)
    store = TraceStore(f"sqlite:///{out / 'pipeline.db'}")  # 1. cases into the store
    cases = load_cases(bundled_sample_path(), split="sample", limit=cases_count)
    store.import_cases(cases)
    # 2. Shapley values of the facts under a scorer, and the SIG evaluator they give
    shapley = trainers.ShapleyConfig("permutation", permutations=PermutationConfig(2, 2))
    trainers.compute_shapley(store, cases, resolve_scorer(SPEC), shapley)
    evaluator = sig_evaluator(store, SPEC, cases).evaluator
    # [docs:search-sft]
    # 3. MCTS over consultations, half the doctor turns from the question bank
    search = store.create_experiment("pipeline-search", "mcts")
    mcts = trainers.MCTSConfig(iterations=3, width=2, proposer_ratio=0.5)
    env = trainers.ConsultationEnvironment(
        context(SPEC, evaluator, 1.0), InMemorySaver(serde=checkpoint_serializer()), mcts,
        experiment_id=search, proposer=resolve_doctor("bank"))
    asyncio.run(trainers.run_mcts(cases, env, store, search, mcts))
    # 4. SFT on the best search paths (a search that found nothing of value gives none),
    #    each ending with a trained answer turn (the correct one where the path's was not)
    samples, _ = trainers.search_samples(store, search, trainers.ExportConfig(),
                                         ChatTokens.for_model(SPEC))
    start = SPEC
    if samples:
        sft = trainers.DoctorSFTConfig(output_dir=str(out / "sft"), max_steps=steps,
                                       learning_rate=1e-4, **QUIET)
        start = f"local:{trainers.train_sft(SPEC, samples, sft, store=store).output_dir}"
    # [/docs:search-sft]
    # 5. SIG-GRPO from there, on fresh consultations of the graph
    run = store.create_experiment("pipeline-grpo", "grpo")
    rollouts = trainers.GraphRollouts({c.id: c for c in cases}, evaluator=evaluator,
                                      max_questions=2, demonstration=True, store=store,
                                      experiment_id=run)
    grpo = trainers.DoctorGRPOConfig(output_dir=str(out / "grpo"), max_steps=steps,
                                     num_generations=2, per_device_train_batch_size=2, **QUIET)
    trained = trainers.train_grpo(start, cases, rollouts, grpo, store=store, experiment_id=run)
    # 6. the trained doctor on the same cases, recorded; its figures; the HTML report
    evaluation = store.create_experiment("pipeline-eval", "eval")
    episodes = run_consultations(cases, context(f"local:{trained.output_dir}", evaluator, 0.0),
                                 on_episode=TraceRecorder(store, evaluation))
    for metric, estimate in summarize(per_case(episodes)).items():
        print(f"{metric}: {estimate}")
    (out / "report.html").write_text(build_report(store, ["pipeline-eval"]))
    print(f"report: {out / 'report.html'}")
    store.close()


if __name__ == "__main__":
    main()
