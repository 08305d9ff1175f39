from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

import promed_agents.backends.model_pool as pool_module
from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.model_pool import ModelPool, shared_pool
from promed_agents.errors import BackendError


@pytest.fixture
def reads(monkeypatch):
    """Loading counted, with stand-in weights (no model is read)."""
    from promed_agents.backends import local_weights

    counted: list[str] = []

    def read(ref):
        counted.append(ref)
        return object(), object()

    monkeypatch.setattr(local_weights, "read_local_model", read)
    return counted


def test_the_least_recently_used_model_is_evicted_when_the_pool_is_full(reads):
    pool = ModelPool(max_local_models=2)
    a = pool.weights("a")
    pool.weights("b")
    assert pool.weights("a") is a  # shared, not read again; "a" is now the recent one
    pool.weights("c")
    assert pool.loaded() == ["a", "c"] and pool.evictions == 1
    pool.weights("b")  # evicted, so read again
    assert reads == ["a", "b", "c", "b"] and pool.loaded() == ["c", "b"]


def test_eviction_and_release_close_the_models_generators(reads, monkeypatch):
    closed: list[str] = []

    class Generator:
        def __init__(self, model, tokenizer, **settings):
            self.settings, self.closed = settings, False

        def close(self):
            self.closed = True
            closed.append(self.settings["label"])

    from promed_agents.backends import batch_generator

    monkeypatch.setattr(batch_generator, "BatchGenerator", Generator)
    pool = ModelPool(max_local_models=1)
    first = pool.batcher("a", label="a1")
    assert pool.batcher("a", label="a1") is first and not first.closed
    pool.batcher("a", label="a2")
    pool.batcher("b", label="b1")  # evicts "a": both of its generators are closed
    assert sorted(closed) == ["a1", "a2"] and first.closed
    assert pool.release("local:b") and closed[-1] == "b1" and pool.loaded() == []
    assert not pool.release("b")  # nothing left to release
    served = pool.serve("policy", object(), object(), label="p")
    pool.weights("c")
    pool.weights("d")  # a served policy is neither counted nor evicted
    assert "policy" in pool.loaded() and not served.closed
    assert pool.batcher("policy") is served
    pool.close()
    assert served.closed and pool.loaded() == []


def test_a_pool_refuses_to_hold_no_model():
    with pytest.raises(ValueError, match="at least 1"):
        ModelPool(max_local_models=0)


def test_a_chat_model_whose_weights_were_evicted_loads_them_again(tiny_model_folder,
                                                                  monkeypatch):
    pool = ModelPool(max_local_models=1)
    monkeypatch.setattr(pool_module, "_POOL", pool)
    chat = LocalChatModel(model_ref=str(tiny_model_folder), max_new_tokens=4)
    before = chat.invoke([HumanMessage("Any fever?")])
    generator = chat.batcher
    pool.weights("smollm2")  # another model takes the only place
    assert generator.closed and pool.loaded() == ["smollm2"]
    after = chat.invoke([HumanMessage("Any fever?")])  # greedy: the same reply
    assert after.content == before.content and pool.loaded() == [str(tiny_model_folder)]
    pool.close()


def test_released_policy_is_not_loaded_again(tiny_model_folder, monkeypatch):
    pool = ModelPool()
    monkeypatch.setattr(pool_module, "_POOL", pool)
    from promed_agents.backends.local_weights import read_local_model

    model, tokenizer = read_local_model(str(tiny_model_folder))
    policy = LocalChatModel.serving(model, tokenizer, name="policy", max_new_tokens=4)
    assert policy.invoke([HumanMessage("Any fever?")]).response_metadata["model"] == \
        "local:policy"
    assert pool.release("policy")
    with pytest.raises(BackendError, match="was released"):
        policy.invoke([HumanMessage("Any fever?")])


def test_resolved_chat_models_are_held_by_the_process_pool(monkeypatch):
    from promed_agents.backends import resolve_chat_model, spec_name

    pool = ModelPool()
    monkeypatch.setattr(pool_module, "_POOL", pool)
    assert shared_pool() is pool
    model = resolve_chat_model("fake:answer: A")
    assert resolve_chat_model("fake:answer: A") is model
    assert spec_name(model) == "fake:answer: A"
    pool.close()  # a closed pool forgets its chat models
    assert resolve_chat_model("fake:answer: A") is not model


THREE_DOCTORS = r'''
import asyncio, json, sys
from pathlib import Path

from transformers import AutoTokenizer

from promed_agents.agents import doctor_sampling, resolve_doctor
from promed_agents.backends import shared_pool
from promed_agents.backends.local_weights import model_folder
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TrainingSample
from promed_agents.trainers.sft_trainer import DoctorSFTConfig, train_sft

out, release = Path(sys.argv[1]), sys.argv[2] == "release"
tokenizer = AutoTokenizer.from_pretrained(model_folder("smollm2"))
prompt = list(tokenizer.apply_chat_template([{"role": "user", "content": "A cough."}],
                                            add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"])
samples = []
for text in ("question: What did the physical examination show?", "answer: B"):
    turn = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    samples.append(TrainingSample(prompt + turn, [0] * len(prompt) + [1] * len(turn)))
cases = load_cases(bundled_sample_path())[:2]
peaks = []
for k in range(3):
    folder = out / f"doctor-{k}"
    train_sft("local:smollm2", samples, DoctorSFTConfig(
        output_dir=str(folder), max_steps=2, per_device_train_batch_size=2,
        learning_rate=1e-5, save_strategy="no", report_to="none", disable_tqdm=True))
    doctor = resolve_doctor(f"local:{folder}")
    context = ConsultationContext(doctor=doctor, max_questions=1, doctor_kwargs=
                                  doctor_sampling(doctor, max_new_tokens=16))
    episodes = asyncio.run(arun_consultations(cases, context))
    assert len(episodes) == 2
    if release:
        shared_pool().release(f"local:{folder}")
    # the peak of this process's own memory (ru_maxrss would carry pytest's over exec)
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    peaks.append(int(status.split()[0]) / 2**20)
print(json.dumps({"peaks_gb": peaks, "loaded": shared_pool().loaded()}))
'''


@pytest.mark.slow
def test_three_doctors_trained_and_evaluated_in_one_process_stay_within_memory(tmp_path):
    """Train three doctors and evaluate each, releasing each when done: the process's
    peak resident memory stays under 3.5 GB and grows by under 0.35 GB from the first
    doctor to the third (a doctor's fp32 weights alone are 0.54 GB), and no model is left
    loaded."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", THREE_DOCTORS, str(tmp_path), "release"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    first, *_, third = figures["peaks_gb"]
    assert figures["loaded"] == []
    assert third < 3.5 and third - first < 0.35, figures
