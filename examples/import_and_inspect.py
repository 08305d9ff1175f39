"""Import cases, look at a partial-information view, record and read back a consultation.

    python examples/import_and_inspect.py [--db sqlite:///example.db]

The first stop of the data path (case -> graph -> trace in SQL -> ...), by hand: until the
consultation graph records episodes itself, the episode below is written out explicitly.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from promed_agents import EpisodeRecord, TurnRecord, bundled_sample_path, load_cases, partial_view
from promed_agents.storage import TraceStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///example.db")
    args = parser.parse_args()

    cases = load_cases(bundled_sample_path(), split="sample")
    with TraceStore(args.db) as store:
        report = store.import_cases(cases)
        print(f"{report.added} case(s) added, {report.unchanged} already stored")

        case = store.get_case("imedqa-0")
        view = partial_view(case, "half-facts")
        print(f"\n{case.id}: {case.question}")
        print(f"known at start: {view.known_facts(case)}")
        hidden = view.hidden_fact_ids(case)

        now = datetime.now(timezone.utc)
        episode = EpisodeRecord(
            case_id=case.id, graph="by-hand", doctor_spec="human", patient_spec="fact-select",
            partial_policy=view.policy, known_fact_ids=view.known_fact_ids, started_at=now,
            finished_at=now, final_answer=case.answer, correct=True,
            turns=[
                TurnRecord(index=0, role="doctor", kind="question",
                           text="question: What did the joint fluid culture show?"),
                TurnRecord(index=1, role="patient", kind="reply", text=case.facts[hidden[1]],
                           disclosed_fact_ids=[hidden[1]]),
                TurnRecord(index=2, role="doctor", kind="answer",
                           text=f"answer: {case.answer[0]}"),
            ])
        episode_id = store.record_episode(episode)
        stored = store.get_episode(episode_id)
        print(f"\nrecorded episode {episode_id} with {len(stored.turns)} turns:")
        for turn in stored.turns:
            print(f"  {turn.role.value:>7}: {turn.text}")


if __name__ == "__main__":
    main()
