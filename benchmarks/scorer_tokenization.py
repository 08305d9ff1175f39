"""How much the Shapley values of the bundled cases move with the joint tokenization.

The value function once tokenized the scorer's prompt in pieces: the prompt up to
``answer:`` (ending in a lone space token), then the answer on its own (``'Mig'`` where
the model reads ``' Mig'``), and the facts after a double space. It now scores the token
sequence that tokenizing the whole text gives (:mod:`promed_agents.sig.answer_scorer`). This
script computes the exact Shapley values of bundled cases both ways, with the same model,
and prints per case and over all facts the mean absolute change and Spearman's rank
correlation of the two sets of values.

    python benchmarks/scorer_tokenization.py --cases 10 --max-facts 6
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from promed_agents.backends.model_pool import load_local_model
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.answer_scorer import scored_text
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.shapley import exact_shapley


def piecewise_value(model, tokenizer, case):
    """v(S) as it was scored before: the same text, its pieces tokenized on their own (the
    facts after an extra space, the answer without the space before it)."""

    def ids(s):
        return tokenizer(s, add_special_tokens=False)["input_ids"]

    def value(coalitions):
        out = []
        for c in coalitions:
            scored = scored_text(tokenizer, case, c)
            (f0, f1), (a0, a1) = scored.facts, scored.answer
            answer = ids(scored.text[a0:a1])
            row = ids(scored.text[:f0]) + ids(" " + scored.text[f0:f1]) + \
                ids(scored.text[f1:a0]) + answer
            with torch.inference_mode():
                logits = model(torch.tensor([row])).logits[0].float()
            logprobs = torch.log_softmax(logits[len(row) - len(answer) - 1:-1], -1)
            out.append(float(logprobs.gather(-1, torch.tensor(answer).unsqueeze(-1)).mean()))
        return out

    return value


def ranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):  # average ranks of ties
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--max-facts", type=int, default=6)
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model, tokenizer = load_local_model(args.model)
    cases = [c for c in load_cases(bundled_sample_path()) if 2 <= len(c.facts) <= args.max_facts]
    cases = cases[:args.cases]
    scorer = LocalAnswerScorer(model_ref=args.model)
    started = time.perf_counter()
    all_old, all_new, rows = [], [], []
    for case in cases:
        n = len(case.facts)
        old = exact_shapley(n, piecewise_value(model, tokenizer, case))
        new = exact_shapley(n, scorer.value_function(case))
        change = sum(abs(a - b) for a, b in zip(old.values, new.values, strict=True)) / n
        rows.append({"case": case.id, "facts": n, "mean_abs_change": round(change, 4),
                     "spearman": round(spearman(old.values, new.values), 3),
                     "v_full_old": round(old.v_full, 3), "v_full_new": round(new.v_full, 3),
                     "same_top_fact": max(range(n), key=old.values.__getitem__)
                     == max(range(n), key=new.values.__getitem__)})
        all_old += old.values
        all_new += new.values
        print(json.dumps(rows[-1]), flush=True)
    mean_change = sum(abs(a - b) for a, b in zip(all_old, all_new, strict=True)) / len(all_old)
    mean_abs = sum(abs(a) for a in all_old) / len(all_old)
    case_rho = [r["spearman"] for r in rows if r["spearman"] == r["spearman"]]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads; model "
          f"{args.model}; {len(cases)} bundled cases, {len(all_old)} facts, exact Shapley; "
          f"{time.perf_counter() - started:.0f} s")
    print(f"mean |phi| before: {mean_abs:.4f}; mean absolute change {mean_change:.4f} "
          f"({mean_change / mean_abs:.2f}x the mean |phi|); Spearman over all facts "
          f"{spearman(all_old, all_new):.3f}, per case median "
          f"{sorted(case_rho)[len(case_rho) // 2]:.3f}; same top fact in "
          f"{sum(r['same_top_fact'] for r in rows)} of {len(rows)} cases")


if __name__ == "__main__":
    main()
