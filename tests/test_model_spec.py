from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from promed_agents.backends import ModelSpec, register_backend, resolve_chat_model, spec_name
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.errors import BackendError


@pytest.mark.parametrize("text, provider, model, base_url", [
    ("local:smollm2", "local", "smollm2", None),
    ("local:/ckpt/step-10", "local", "/ckpt/step-10", None),
    ("openai:qwen@http://127.0.0.1:8000/v1", "openai", "qwen", "http://127.0.0.1:8000/v1"),
    ("fake:question: fever?||answer: A", "fake", "question: fever?||answer: A", None),
])
def test_parse(text, provider, model, base_url):
    spec = ModelSpec.parse(text)
    assert (spec.provider, spec.model, spec.base_url) == (provider, model, base_url)
    assert str(spec) == text


@pytest.mark.parametrize("bad", ["smollm2", ":x", "Local:x", ""])
def test_bad_specs_say_the_expected_form(bad):
    with pytest.raises(BackendError, match="provider:model"):
        ModelSpec.parse(bad)


def test_resolution_is_shared_and_instances_pass_through():
    first = resolve_chat_model("fake:answer: A")
    assert resolve_chat_model("fake:answer: A") is first
    assert isinstance(first, ScriptedChatModel)
    mine = ScriptedChatModel(responses=["answer: B"])
    assert resolve_chat_model(mine) is mine
    assert spec_name(first) == "fake:answer: A"
    assert spec_name("local:smollm2") == "local:smollm2"


def test_openai_spec_points_at_the_server():
    model = resolve_chat_model("openai:served@http://127.0.0.1:9/v1")
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.model_name == "served"
    assert spec_name(model) == "openai:served@http://127.0.0.1:9/v1"


def test_registered_provider_and_unknown_provider():
    register_backend("echo", lambda spec: ScriptedChatModel(responses=[spec.model]))
    assert resolve_chat_model("echo:answer: C").invoke("hi").content == "answer: C"
    with pytest.raises(BackendError, match="cannot create a chat model for nosuch:model"):
        resolve_chat_model("nosuch:model")


def test_missing_local_model_directory(tmp_path):
    with pytest.raises(BackendError, match="no config.json"):
        resolve_chat_model(f"local:{tmp_path}").invoke("hi")


def test_every_provider_is_listed_in_the_registry_not_registered_by_an_import():
    """``bank:`` resolves in a fresh interpreter that imported only the backends: the
    registry names its factory, loaded on first use."""
    import subprocess
    import sys

    code = ("import sys; from promed_agents.backends import resolve_chat_model; "
            "assert 'promed_agents.agents.reference_doctors' not in sys.modules; "
            "print(type(resolve_chat_model('bank:fixed')).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "BankDoctor"
