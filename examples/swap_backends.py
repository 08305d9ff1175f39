"""One graph, three backends: a scripted model, the embedded SmolLM2, an OpenAI-compatible
server. Only the model spec changes.

    python examples/swap_backends.py [--openai-url http://127.0.0.1:8000/v1 --openai-model M]

Without --openai-url the third backend is skipped (start one with, e.g.,
`transformers serve --port 8000 ~/.cache/promed_agents/smollm2-135m-instruct`).
"""

from __future__ import annotations

import argparse

from promed_agents import bundled_sample_path, load_cases
from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends import resolve_chat_model, shared_pool
from promed_agents.graphs import ConsultationContext, build_consultation_graph, run_consultations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--openai-url", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--openai-model", default="default")
    args = parser.parse_args()
    specs = ["fake:question: Do you have a fever?||answer: C", "local:smollm2"]
    if args.openai_url:
        specs.append(f"openai:{args.openai_model}@{args.openai_url}")
    cases = load_cases(bundled_sample_path())[: args.cases]
    # [docs:swap]
    graph = build_consultation_graph()  # one graph for every backend
    for spec in specs:
        doctor = resolve_chat_model(spec)
        context = ConsultationContext(doctor=doctor, max_questions=2, doctor_kwargs=doctor_sampling(
            doctor, max_new_tokens=32, temperature=0.0))
        episodes = run_consultations(cases, context, graph=graph)
        correct = sum(bool(e.correct) for e in episodes)
        statuses = ",".join(e.status.value for e in episodes)
        print(f"{spec.split('@')[0]:<60} {correct}/{len(episodes)} correct  [{statuses}]")
    # [/docs:swap]
    # [docs:pool]
    pool = shared_pool()  # every model this process has loaded
    pool.release("local:smollm2")  # done with it: its weights and generators go now
    print(f"local models still loaded: {', '.join(pool.loaded()) or 'none'}")
    # [/docs:pool]


if __name__ == "__main__":
    main()
