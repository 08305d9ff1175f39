"""The GPU figures, from models built from configs: what ``gpu_check.sh`` runs.

Needs only torch and transformers (a lent GPU machine has them, and no model weights, no
network, no trl: ``gpu_check.sh --wheels DIR`` installs what else part 3 needs). Three
measurements, in order, written as one JSON object:

1. Shapley scoring throughput, per model config (SmolLM2-135M and Qwen2.5-0.5B shapes,
   randomly initialised, bf16): the reference's way (one full forward per coalition at
   batch 1) against ours (the shared prompt prefix read once, each coalition's rest read
   in batches of ``--batch``); coalitions per second, and the fraction of the GPU's bf16
   dense peak the model FLOPs reach (2 x non-embedding parameters per token read).
2. Rollouts: ``turns`` doctor turns of ``--new-tokens`` tokens for ``--conversations``
   conversations, reference-style (one conversation at a time, each turn re-reading the
   whole prompt) against batched (all conversations together, each turn reading only
   its new tokens through the key/value cache).
3. One SIG-GRPO step against one stock TRL ``GRPOTrainer`` step on the same batch of
   consultations (:mod:`grpo_step`), SmolLM2-135M shape; skipped, saying why, when trl
   or the project's dependencies cannot be imported.

``--dry-run`` runs all three on the CPU with a tiny config in seconds (the test suite does,
so the script cannot rot); its figures mean nothing.

    python benchmarks/gpu_check.py --out gpu_check.json          # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/dry.json  # anywhere
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

BF16_DENSE_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16 tensor-core peaks (vendor figures, SXM parts)."""

CONFIGS = {
    "smollm2-135m": lambda: LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        tie_word_embeddings=True),
    "qwen2.5-0.5b": lambda: Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        tie_word_embeddings=True),
    "tiny": lambda: LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in BF16_DENSE_PEAK_TFLOPS.items()
                 if key in name), None)


def build(name: str, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[name]()).to(device=device, dtype=dtype)
    model.eval()
    embed = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embed
    return model, body


def shapley_throughput(model, body: int, device, args) -> dict:
    """Coalitions/s: full forwards at batch 1 against prefix-shared batches."""
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(1)
    prefix = torch.randint(0, vocab, (1, args.prefix_tokens), generator=gen).to(device)
    rests = torch.randint(0, vocab, (args.coalitions, args.rest_tokens), generator=gen).to(device)
    with torch.inference_mode():
        # The reference: every coalition's whole prompt, one at a time.
        model(torch.cat([prefix, rests[:1]], 1), logits_to_keep=args.answer_tokens)
        synchronize(device)
        start = time.perf_counter()
        for row in rests[:args.reference_coalitions]:
            model(torch.cat([prefix, row[None]], 1), logits_to_keep=args.answer_tokens)
        synchronize(device)
        ref_s = (time.perf_counter() - start) / args.reference_coalitions
        # Ours: the prefix once, then each batch's rests on top of its states.
        synchronize(device)
        start = time.perf_counter()
        shared = model(prefix, use_cache=True).past_key_values
        for first in range(0, args.coalitions, args.batch):
            batch = rests[first:first + args.batch]
            states = copy.deepcopy(shared)
            states.batch_repeat_interleave(len(batch))
            model(batch, past_key_values=states, logits_to_keep=args.answer_tokens)
        synchronize(device)
        ours_s = (time.perf_counter() - start) / args.coalitions
    ref_tokens = args.prefix_tokens + args.rest_tokens
    out = {"reference_coalitions_per_s": round(1 / ref_s, 2),
           "ours_coalitions_per_s": round(1 / ours_s, 2),
           "ours_vs_reference": round(ref_s / ours_s, 2),
           "batch": args.batch, "prefix_tokens": args.prefix_tokens,
           "rest_tokens": args.rest_tokens}
    peak = peak_flops(device)
    if peak:
        out["reference_fraction_of_bf16_peak"] = round(2 * body * ref_tokens / ref_s / peak, 4)
        out["ours_fraction_of_bf16_peak"] = round(2 * body * args.rest_tokens / ours_s / peak, 4)
    return out


def rollout_throughput(model, device, args) -> dict:
    """Doctor turns: one conversation at a time re-reading its prompt, against batched."""
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(2)
    prompts = torch.randint(0, vocab, (args.conversations, args.prefix_tokens),
                            generator=gen).to(device)
    replies = torch.randint(0, vocab, (args.turns, args.conversations, args.rest_tokens),
                            generator=gen).to(device)

    def decode(ids, states, steps):
        """``steps`` greedy tokens after ``ids`` (states: those of everything before)."""
        out = model(ids, past_key_values=states, use_cache=True, logits_to_keep=1)
        tokens = []
        for _ in range(steps):
            tokens.append(out.logits[:, -1:].argmax(-1))
            out = model(tokens[-1], past_key_values=out.past_key_values, use_cache=True,
                        logits_to_keep=1)
        return out.past_key_values, torch.cat(tokens, 1)

    with torch.inference_mode():
        synchronize(device)
        start = time.perf_counter()
        for c in range(args.conversations):
            history = prompts[c:c + 1]
            for turn in range(args.turns):
                _, asked = decode(history, None, args.new_tokens)
                history = torch.cat([history, asked, replies[turn, c:c + 1]], 1)
        synchronize(device)
        ref_s = time.perf_counter() - start
        start = time.perf_counter()
        states, ids = None, prompts
        for turn in range(args.turns):
            states, _ = decode(ids, states, args.new_tokens)
            ids = replies[turn]
        synchronize(device)
        batched_s = time.perf_counter() - start
    return {"conversations": args.conversations, "turns": args.turns,
            "new_tokens": args.new_tokens,
            "reference_seconds": round(ref_s, 3), "batched_seconds": round(batched_s, 3),
            "batched_vs_reference": round(ref_s / batched_s, 2)}


def grpo_part(args, device: torch.device, dtype: torch.dtype) -> dict:
    """Part 3, or why it was skipped (its libraries missing: bring them with --wheels)."""
    try:
        from grpo_step import grpo_step

        import promed_agents.trainers.grpo_trainer  # noqa: F401  trl, langgraph, pydantic
    except ImportError as missing:
        return {"skipped": f"{missing}: run gpu_check.sh with --wheels DIR "
                           "(benchmarks/gpu_wheels.sh DIR fetches them)"}
    sizes = argparse.Namespace(**{**vars(args), "turns": max(args.turns, 2),
                                  "prompt_tokens": args.prefix_tokens})
    with tempfile.TemporaryDirectory() as out:
        figures = grpo_step(build(args.grpo_model, device, torch.float32)[0], device, sizes,
                            out)
    return {"model": args.grpo_model, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, a tiny config, tiny sizes: checks the script runs")
    parser.add_argument("--out", type=Path, required=True, help="Where the JSON goes.")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b"])
    parser.add_argument("--coalitions", type=int, default=1024)
    parser.add_argument("--reference-coalitions", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--prefix-tokens", type=int, default=120)
    parser.add_argument("--rest-tokens", type=int, default=80)
    parser.add_argument("--answer-tokens", type=int, default=8)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--grpo-model", default="smollm2-135m")
    parser.add_argument("--groups", type=int, default=2, help="GRPO step: cases per batch")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--doctor-tokens", type=int, default=32)
    parser.add_argument("--reply-tokens", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps timed (after one)")
    args = parser.parse_args()
    if args.dry_run:
        device, dtype, models = torch.device("cpu"), torch.float32, ["tiny"]
        for knob, value in dict(coalitions=8, reference_coalitions=4, batch=4,
                                prefix_tokens=16, rest_tokens=8, answer_tokens=2,
                                conversations=2, turns=2, new_tokens=3, groups=1,
                                num_generations=2, doctor_tokens=4, reply_tokens=4,
                                steps=1, grpo_model="tiny").items():
            setattr(args, knob, value)
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on the GPU machine, or use --dry-run")
        device, dtype, models = torch.device("cuda"), torch.bfloat16, args.models
    report = {"dry_run": args.dry_run, "device": (torch.cuda.get_device_name(device)
                                                  if device.type == "cuda" else "cpu"),
              "torch": torch.__version__, "python": platform.python_version(),
              "dtype": str(dtype).removeprefix("torch."), "shapley": {}, "rollouts": {},
              "grpo_step": {}}
    for name in models:
        model, body = build(name, device, dtype)
        report["shapley"][name] = shapley_throughput(model, body, device, args)
        print(json.dumps({"shapley": name, **report["shapley"][name]}), flush=True)
        report["rollouts"][name] = rollout_throughput(model, device, args)
        print(json.dumps({"rollouts": name, **report["rollouts"][name]}), flush=True)
        del model
    report["grpo_step"] = grpo_part(args, device, dtype)
    print(json.dumps({"grpo_step": args.grpo_model, **report["grpo_step"]}), flush=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
