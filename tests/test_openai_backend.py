"""The openai: backend against a real OpenAI-compatible server on loopback:
`transformers serve` with the embedded SmolLM2 (no mock)."""

from __future__ import annotations

from promed_agents.backends import resolve_chat_model, sampling_kwargs


def test_openai_backend_talks_to_a_real_server(served_url, smollm2_folder):
    model = resolve_chat_model(f"openai:{smollm2_folder}@{served_url}")
    reply = model.invoke("Say hello.", **sampling_kwargs(model, max_tokens=8))
    assert isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata["output_tokens"] <= 8


def test_same_graph_runs_with_the_openai_backend(served_url, smollm2_folder):
    from promed_agents.graphs import ConsultationContext, run_consultations
    from promed_agents.loader import bundled_sample_path, load_cases

    doctor = resolve_chat_model(f"openai:{smollm2_folder}@{served_url}")
    cases = load_cases(bundled_sample_path())[:2]
    context = ConsultationContext(doctor=doctor, max_questions=1, doctor_kwargs=sampling_kwargs(
        doctor, max_tokens=24, temperature=0.0, stop=["\n"]))
    episodes = run_consultations(cases, context, concurrency=2)
    assert [e.status.value for e in episodes] != ["failed", "failed"], \
        [e.failure_reason for e in episodes]
    for episode in episodes:
        assert episode.doctor_spec.startswith("openai:")
        assert episode.status.value in ("completed", "timeout")
        assert episode.turns and episode.turns[0].role.value == "doctor"
