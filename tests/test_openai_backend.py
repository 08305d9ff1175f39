"""The openai: backend against a real OpenAI-compatible server on loopback:
`transformers serve` with the embedded SmolLM2 (no mock)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from promed_agents.backends import resolve_chat_model, sampling_kwargs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_url(smollm2_folder: Path) -> Iterator[str]:
    cli = Path(sys.executable).parent / "transformers"
    if not cli.exists() and shutil.which("transformers") is None:
        pytest.skip("the transformers CLI is not installed")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = _free_port()
    server = subprocess.Popen(
        [str(cli if cli.exists() else "transformers"), "serve", "--host", "127.0.0.1",
         "--port", str(port), str(smollm2_folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start: {server.stderr.read()}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


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
