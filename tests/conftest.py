"""Shared fixtures: paths, SQLite and PostgreSQL databases, sample records."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"development data {path} is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: $PROMED_TEST_PG_URL, or one started for this session.

    Locally the tests skip when no server can be started; with CI=true they fail instead.
    """
    url = os.environ.get("PROMED_TEST_PG_URL")
    if url:
        yield url
        return
    state = tmp_path_factory.mktemp("postgres")
    started = subprocess.run([str(ROOT / ".ci" / "postgres"), "start", str(state)],
                             capture_output=True, text=True)
    if started.returncode != 0:
        message = f"cannot start PostgreSQL: {started.stderr.strip()[-500:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(state)], check=False)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    from promed_agents.storage.database import resolve_url

    admin = create_engine(resolve_url(postgres_server), isolation_level="AUTOCOMMIT")
    name = f"promed_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = resolve_url(postgres_server).rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


MEDIQ_RECORD = {
    "id": 7,
    "question": "Which of the following is the most likely diagnosis?",
    "context": ["A 30-year-old man has a fever of 39.2°C.", "He has a stiff neck."],
    "options": {"A": "Meningitis", "B": "Migraine", "C": "Sinusitis", "D": "Tetanus"},
    "answer": "Meningitis",
    "answer_idx": "A",
    "facts": ["1. Patient is a 30-year-old man.", "2. Patient has a fever of 39.2°C.",
              "3. Patient has a stiff neck."],
    "patient": {"gender": "Male", "age": "30 years old"},
}


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The embedded SmolLM2 as a transformers folder (converted once, then cached)."""
    from promed_agents.backends.local_weights import model_folder

    return model_folder("smollm2")


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory, smollm2_folder: Path) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's tokenizer: fast, no download."""
    from transformers import AutoTokenizer

    return _tiny_llama(AutoTokenizer.from_pretrained(smollm2_folder),
                       tmp_path_factory.mktemp("tiny-llama"))


def _tiny_llama(tokenizer: Any, folder: Path) -> Path:
    """A 2-layer Llama with random weights (seed 0) for ``tokenizer``, saved in ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


OTHER_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
"""A chat template unlike SmolLM2's (role tags, ``</s>`` ends a turn)."""


@pytest.fixture(scope="session")
def other_vocab_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights whose tokenizer is not SmolLM2's: a byte-level
    BPE of 800 tokens learnt from the bundled cases, with its own chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from promed_agents.agents.doctor import PROACTIVE_SYSTEM, case_prompt
    from promed_agents.loader import bundled_sample_path, load_cases
    from promed_agents.partial_view import partial_view

    cases = load_cases(bundled_sample_path())
    texts = [PROACTIVE_SYSTEM] + [case_prompt(c, partial_view(c)) + " ".join(c.facts)
                                  for c in cases]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<unk>", "<s>", "</s>", "<|system|>", "<|user|>",
                                        "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>", pad_token="</s>")
    tokenizer.chat_template = OTHER_CHAT_TEMPLATE
    return _tiny_llama(tokenizer, tmp_path_factory.mktemp("other-vocab-llama"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_url(smollm2_folder: Path) -> Iterator[str]:
    """An OpenAI-compatible server (`transformers serve`, embedded SmolLM2) on loopback."""
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


VLLM_START_S = float(os.environ.get("PROMED_VLLM_START_S", "1200"))
"""How long the vLLM server may take to be ready (measured: minutes on 2 busy cores)."""


def _unavailable(message: str) -> None:
    """Locally a missing real part skips its tests; with CI=true they fail with the reason."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def vllm_url(smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """A real vLLM server (the CPU build, in its own environment from ``.ci/vllm-env``,
    started by ``.ci/vllm-serve``) serving the embedded SmolLM2 in float32 as ``smollm2``
    on loopback; or ``$PROMED_TEST_VLLM_URL``. Stopped after the session."""
    given = os.environ.get("PROMED_TEST_VLLM_URL")
    if given:
        yield given
        return
    made = subprocess.run([str(ROOT / ".ci" / "vllm-env")], capture_output=True, text=True)
    if made.returncode != 0:
        _unavailable(f"cannot make the vLLM environment: {made.stderr.strip()[-800:]}")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([str(ROOT / ".ci" / "vllm-serve"), str(smollm2_folder),
                                   str(port)], stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + VLLM_START_S
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    _stop_group(server, signal.SIGKILL)
                    _unavailable(f"the vLLM server did not start within {VLLM_START_S:.0f} "
                                 f"s: {log.read_text()[-1500:]}")
                time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:  # vLLM shuts down on SIGINT (measured: SIGTERM left its API server up)
        _stop_group(server, signal.SIGINT)


def _stop_group(server: subprocess.Popen, first: signal.Signals) -> None:
    """Stop a server started in a session of its own, its worker processes with it."""
    for sent in (first, signal.SIGKILL):
        if server.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sent)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
