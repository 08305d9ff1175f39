"""One SIG-GRPO step against one stock TRL ``GRPOTrainer`` step on the same batch.

Part 3 of ``gpu_check.sh``. Both trainers get the same model (built from a config, so no
weights are needed), the same hyperparameters and the same consultations: ``groups`` cases
x ``num_generations`` sequences, each a prompt then ``turns`` doctor turns of
``doctor_tokens`` tokens separated by patient replies of ``reply_tokens`` tokens (masked out
of the loss). The stock trainer receives them through its ``rollout_func`` (with the
replies as ``env_mask`` zeros) and one scalar reward per sequence; ours receives them as
logged episodes with a SIG per question and turns them into per-token advantages. Neither
generates, so the timed step is what differs between them: building the batch, the
reference and old log-probabilities, the loss, backward and the optimizer step.

Each trainer runs ``1 + steps`` optimizer steps; the first (allocation, warm-up) is not
timed, the figure is the median of the rest. ``sig_vs_stock`` is ours over stock (target
at most 1.15).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import torch

PAD, EOS = 1, 2


def word_tokenizer(vocab_size: int) -> Any:
    """A tokenizer with ``vocab_size`` made-up words (no files, no download); word 1 pads,
    word 2 ends a turn."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="w0", pad_token="w1",
                                   eos_token="w2")


def consultations(vocab: int, args: Any, seed: int = 3) -> list[Any]:
    """``groups x num_generations`` episodes with exact token ids and logprobs."""
    from promed_agents.trace import EpisodeRecord, Role, TurnKind, TurnRecord

    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def words(n: int) -> list[int]:
        return [rng.randrange(3, vocab) for _ in range(n)]

    episodes = []
    for group in range(args.groups):
        for _ in range(args.num_generations):
            context, turns = words(args.prompt_tokens), []
            for k in range(args.turns):
                last = k == args.turns - 1
                said = words(args.doctor_tokens)
                if last:  # the answer ends the consultation with the end-of-turn token
                    said[-1] = EOS
                turns.append(TurnRecord(
                    index=len(turns), role=Role.DOCTOR, text="answer: A" if last else "q",
                    kind=TurnKind.ANSWER if last else TurnKind.QUESTION,
                    prompt_token_ids=list(context), token_ids=said,
                    logprobs=[-rng.uniform(0.5, 3.0) for _ in said],
                    sig=None if last else rng.choice([0.0, 0.0, 0.1, 0.3]), format_score=1.0))
                if not last:
                    reply = words(args.reply_tokens)
                    turns.append(TurnRecord(index=len(turns), role=Role.PATIENT, text="r",
                                            kind=TurnKind.REPLY))
                    context = context + said + reply
            correct = rng.random() < 0.5
            episodes.append(EpisodeRecord(
                case_id=f"case-{group}", graph="grpo-step", doctor_spec="config:random",
                known_fact_ids=[0], started_at=start, finished_at=start, final_answer=["A"],
                correct=correct, total_reward=3.0 * correct, turns=turns))
    return episodes


class _Episodes:
    """Our trainer's source: the prepared consultations, a group per case id."""

    off_policy = False

    def __init__(self, episodes: list[Any]):
        self.by_case: dict[str, list[Any]] = {}
        for episode in episodes:
            self.by_case.setdefault(episode.case_id, []).append(episode)
        self.taken: dict[str, int] = {}

    def episodes(self, case_ids: list[str], trainer: Any) -> list[Any]:
        out = []
        for case_id in case_ids:
            k = self.taken.get(case_id, 0)
            out.append(self.by_case[case_id][k % len(self.by_case[case_id])])
            self.taken[case_id] = k + 1
        return out


class _StepTimer:
    def __init__(self, device: torch.device):
        self.device, self.seconds, self._start = device, [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)


def _callback(device: torch.device) -> Any:
    from transformers import TrainerCallback

    class StepTimer(_StepTimer, TrainerCallback):
        pass

    return StepTimer(device)


def grpo_step(model: Any, device: torch.device, args: Any, out_dir: str) -> dict:
    """Median seconds per optimizer step, ours and stock, on the same consultations.

    ``model`` is saved once to ``out_dir`` and both trainers load it from there (TRL builds
    the KL's reference model from the path); ``args`` holds the sizes (``groups``,
    ``num_generations``, ``turns``, ``prompt_tokens``, ``doctor_tokens``,
    ``reply_tokens``, ``steps``)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from promed_agents.graphs.token_sequence import policy_samples, stitch
    from promed_agents.trainers.grpo_trainer import DoctorGRPOConfig, DoctorGRPOTrainer

    vocab = model.config.vocab_size
    tokenizer = word_tokenizer(vocab)
    folder = f"{out_dir}/model"
    model.config.pad_token_id, model.config.eos_token_id = PAD, EOS
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    episodes = consultations(vocab, args)
    batch = args.groups * args.num_generations
    common = dict(max_steps=1 + args.steps, per_device_train_batch_size=batch,
                  num_generations=args.num_generations, learning_rate=5e-6, beta=0.04,
                  epsilon=0.1, loss_type="grpo", temperature=1.0, logging_steps=1,
                  save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
                  max_completion_length=10_000, use_cpu=device.type != "cuda",
                  bf16=device.type == "cuda")

    ours = _callback(device)
    cases = [f"case-{g}" for g in range(args.groups)]
    data = Dataset.from_dict({"case_id": cases, "prompt": cases})
    DoctorGRPOTrainer(folder, DoctorGRPOConfig(output_dir=f"{out_dir}/sig", **common),
                      data, _Episodes(episodes), processing_class=tokenizer,
                      callbacks=[ours]).train()

    sequences = {}
    for episode in episodes:
        sequences.setdefault(episode.case_id, []).append(stitch(policy_samples(episode)))
    served: dict[str, int] = {}

    def rollout(prompts: list[str], trainer: Any) -> dict[str, list]:
        rows = []
        for prompt in prompts:
            k = served.get(prompt, 0)
            rows.append(sequences[prompt][k % len(sequences[prompt])])
            served[prompt] = k + 1
        return {"prompt_ids": [r.prompt_ids for r in rows],
                "completion_ids": [r.completion_ids for r in rows],
                "logprobs": [r.logprobs for r in rows],
                "env_mask": [r.policy_mask for r in rows]}

    reward_rng = random.Random(5)

    def outcome(prompts: list[str], completions: list[Any], **_: Any) -> list[float]:
        return [3.0 * (reward_rng.random() < 0.5) for _ in prompts]

    stock = _callback(device)
    GRPOTrainer(folder, reward_funcs=[outcome],
                args=GRPOConfig(output_dir=f"{out_dir}/stock", **common),
                train_dataset=data, processing_class=tokenizer, rollout_func=rollout,
                callbacks=[stock]).train()
    sig_s, stock_s = statistics.median(ours.seconds[1:]), statistics.median(stock.seconds[1:])
    tokens = sum(len(s.completion_ids) for rows in sequences.values() for s in rows)
    return {"sequences": batch, "completion_tokens": tokens, "timed_steps": args.steps,
            "sig_grpo_step_seconds": round(sig_s, 4), "stock_step_seconds": round(stock_s, 4),
            "sig_vs_stock": round(sig_s / stock_s, 3)}
