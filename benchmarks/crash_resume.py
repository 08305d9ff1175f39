"""Crash and resume under ``kill -9``: four long jobs, killed and rerun.

    python benchmarks/crash_resume.py [--model local:smollm2] [--cases 8] [--kills 2]
        [--jobs consult,shapley,mcts,train] [--postgres-url URL] [--json FILE]

Each job is a ``promed`` command: a consultation batch (``consult --checkpoints``), a
Shapley job, an MCTS search and a SIG-GRPO training run. It runs once uninterrupted into
its own SQLite store (the reference), then again into a second store, where it is sent
SIGKILL at a random moment after it has stored some work, ``--kills`` times, each time
rerun with the same command, and finally rerun to the end. After every kill the second
store (and the training output folder) is checked for half-written work; at the end its
counts are compared with the reference's, and the work stored before the first kill must
still be there, unchanged (it was not redone). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgres_database import fresh_postgres_db  # benchmarks/postgres_database.py
from sqlalchemy import create_engine, text

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore, resolve_url

PROMED = str(Path(sys.executable).with_name("promed"))
RUN = "crash"  # the experiment name every job uses


def rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def experiment_id(engine: Any) -> int | None:
    found = rows(engine, "SELECT id FROM experiments WHERE name = :n", n=RUN)
    return found[0][0] if found else None


def graph_checkpoints(db: str, work: Path) -> str:
    """Where LangGraph keeps the job's checkpoints: the PostgreSQL store itself, or a
    SQLite file beside a SQLite store."""
    return db if db.startswith("postgresql") else str(work / "graph.db")


def episode_problems(engine: Any) -> list[str]:
    """Episodes whose stored turns are not all there."""
    return [f"episode {i} has {n} of {want} turns" for i, want, n in rows(
        engine, "SELECT e.id, e.num_turns, (SELECT count(*) FROM turns t WHERE "
        "t.episode_id = e.id) FROM episodes e") if n != want]


@dataclass
class Job:
    """A command, how far it got, what it stored, and what may not be half-written."""

    name: str
    args: Callable[[str, Path], list[str]]
    progress: Callable[[Any, Path], int]
    census: Callable[[Any, Path], dict[str, Any]]
    snapshot: Callable[[Any, Path], dict[str, Any]]
    problems: Callable[[Any, Path], list[str]]
    compared: tuple[str, ...]


def jobs(model: str, cases: int, steps: int) -> dict[str, Job]:
    def consult_args(db: str, work: Path) -> list[str]:
        return ["consult", "--cases", str(cases), "--doctor", model, "--max-questions", "2",
                "--max-new-tokens", "24", "--temperature", "0", "--concurrency", "1",
                "--experiment", RUN, "--checkpoints", graph_checkpoints(db, work), "--db", db]

    def consult_census(engine: Any, work: Path) -> dict[str, Any]:
        run = experiment_id(engine)
        found = rows(engine, "SELECT id, case_id, num_turns, status FROM episodes WHERE "
                     "experiment_id = :r", r=run)
        return {"episodes": len(found), "cases": len({r[1] for r in found}),
                "duplicated": len(found) - len({r[1] for r in found}),
                "turns": sum(r[2] for r in found),
                "status": dict(Counter(r[3] for r in found))}

    def shapley_args(db: str, work: Path) -> list[str]:
        return ["shapley", "--cases", str(cases), "--scorer", model, "--method",
                "permutation", "--permutations", "4", "--min-permutations", "4", "--db", db]

    def shapley_census(engine: Any, work: Path) -> dict[str, Any]:
        found = rows(engine, "SELECT case_id, fact_index, value FROM shapley_values")
        return {"rows": len(found), "cases": len({r[0] for r in found}),
                "values_sha256": hashlib.sha256(json.dumps(sorted(
                    (r[0], r[1], round(r[2], 9)) for r in found)).encode()).hexdigest()[:16]}

    def shapley_problems(engine: Any, work: Path) -> list[str]:
        return [f"case {c} has {n} of {want} fact values" for c, n, want in rows(
            engine, "SELECT s.case_id, count(*), (SELECT count(*) FROM facts f WHERE "
            "f.case_id = s.case_id) FROM shapley_values s GROUP BY s.case_id") if n != want]

    def mcts_args(db: str, work: Path) -> list[str]:
        return ["mcts", "--experiment", RUN, "--cases", str(cases), "--doctor", model,
                "--iterations", "3", "--width", "2", "--max-questions", "2",
                "--max-new-tokens", "24", "--concurrency", "2", "--checkpoints",
                graph_checkpoints(db, work), "--db", db]

    def mcts_census(engine: Any, work: Path) -> dict[str, Any]:
        run = experiment_id(engine)
        roots = rows(engine, "SELECT case_id, visits FROM search_nodes WHERE "
                     "experiment_id = :r AND parent_id IS NULL", r=run)
        return {"cases": len(roots), "iterations": int(sum(v for _, v in roots)),
                "roots_per_case": max(Counter(c for c, _ in roots).values(), default=0),
                "nodes": rows(engine, "SELECT count(*) FROM search_nodes WHERE "
                              "experiment_id = :r", r=run)[0][0],
                "episodes": rows(engine, "SELECT count(*) FROM episodes WHERE "
                                 "experiment_id = :r", r=run)[0][0]}

    def mcts_problems(engine: Any, work: Path) -> list[str]:
        orphans = rows(engine, "SELECT n.id FROM search_nodes n WHERE n.parent_id IS NOT "
                       "NULL AND NOT EXISTS (SELECT 1 FROM search_nodes p WHERE p.id = "
                       "n.parent_id)")
        return [f"search node {n} has no parent" for (n,) in orphans] + \
            episode_problems(engine)

    def train_args(db: str, work: Path) -> list[str]:
        return ["train", "grpo", "--model", model, "--output", str(work / "doctor"),
                "--cases", str(cases), "--num-generations", "2", "--cases-per-step", "1",
                "--max-steps", str(steps), "--save-steps", "1", "--max-questions", "1",
                "--max-new-tokens", "16", "--seed", "0", "--experiment", RUN, "--db", db]

    def whole_checkpoints(work: Path) -> list[int]:
        from promed_agents.trainers.training_output import checkpoint_step

        return sorted(s for p in (work / "doctor").glob("checkpoint-*")
                      if (s := checkpoint_step(p)) is not None)

    def train_census(engine: Any, work: Path) -> dict[str, Any]:
        run = experiment_id(engine)
        receipt = work / "doctor" / "promed_training.json"
        return {"steps": json.loads(receipt.read_text())["steps"] if receipt.exists()
                else None,
                "metric_rows": rows(engine, "SELECT count(*) FROM training_metrics WHERE "
                                    "experiment_id = :r", r=run)[0][0],
                "rollouts": rows(engine, "SELECT count(*) FROM episodes WHERE "
                                 "experiment_id = :r", r=run)[0][0],
                "checkpoint_rows": rows(engine, "SELECT count(*) FROM model_checkpoints")[0][0]}

    def train_snapshot(engine: Any, work: Path) -> dict[str, Any]:
        done = max(whole_checkpoints(work), default=0)  # rollouts of steps it keeps
        return {str(i): s for i, s in rows(
            engine, "SELECT id, training_step FROM episodes WHERE training_step < :d", d=done)}

    def train_problems(engine: Any, work: Path) -> list[str]:
        per_step = rows(engine, "SELECT training_step, count(*) FROM episodes GROUP BY "
                        "training_step")
        return [f"training step {s} has {n} of 2 rollouts" for s, n in per_step if n != 2] + \
            episode_problems(engine)

    def count(sql: str) -> Callable[[Any, Path], int]:
        return lambda engine, work: int(rows(engine, sql, r=experiment_id(engine))[0][0] or 0)

    return {
        "consult": Job("consult", consult_args,
                       count("SELECT count(*) FROM episodes WHERE experiment_id = :r"),
                       consult_census,
                       lambda e, w: {str(i): [c, n, s] for i, c, n, s in rows(
                           e, "SELECT id, case_id, num_turns, status FROM episodes")},
                       lambda e, w: episode_problems(e),
                       ("episodes", "cases", "duplicated", "turns", "status")),
        "shapley": Job("shapley", shapley_args,
                       count("SELECT count(DISTINCT case_id) FROM shapley_values"),
                       shapley_census,
                       lambda e, w: {f"{c}/{f}": [i, v] for i, c, f, v in rows(
                           e, "SELECT id, case_id, fact_index, value FROM shapley_values")},
                       shapley_problems, ("rows", "cases", "values_sha256")),
        "mcts": Job("mcts", mcts_args,
                    count("SELECT sum(visits) FROM search_nodes WHERE experiment_id = :r "
                          "AND parent_id IS NULL"),
                    mcts_census,
                    lambda e, w: {str(i): t for i, t in rows(
                        e, "SELECT id, turn_text FROM search_nodes")},
                    mcts_problems, ("cases", "iterations", "roots_per_case")),
        "train": Job("train", train_args, lambda e, w: max(whole_checkpoints(w), default=0),
                     train_census, train_snapshot, train_problems,
                     ("steps", "metric_rows", "rollouts", "checkpoint_rows")),
    }


def prepare(work: Path, postgres_url: str | None) -> str:
    """A new store holding the bundled cases: a SQLite file in ``work``, or a new
    database on the server of ``postgres_url``."""
    work.mkdir(parents=True)
    db = fresh_postgres_db(postgres_url) if postgres_url else f"sqlite:///{work / 'store.db'}"
    with TraceStore(db) as store:
        store.import_cases(load_cases(bundled_sample_path(), split="sample"))
    return db


def finish(job: Job, db: str, work: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([PROMED, *job.args(db, work)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{job.name} failed ({done.returncode}):\n{done.stdout}\n"
                         f"{done.stderr}")
    return time.perf_counter() - started


def crash(job: Job, engine: Any, db: str, work: Path, kills: int, jitter: float,
          rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Kill the command ``kills`` times; the kills' records and the first snapshot."""
    records: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    for _ in range(kills):
        before = job.progress(engine, work)
        started = time.perf_counter()
        process = subprocess.Popen([PROMED, *job.args(db, work)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while process.poll() is None and job.progress(engine, work) <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, jitter))
        if process.poll() is not None:
            records.append({"killed": False, "note": "finished before the kill"})
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if not first:
            first = job.snapshot(engine, work)
        records.append({"killed": True, "after_s": round(time.perf_counter() - started, 1),
                        "done_at_kill": job.progress(engine, work),
                        "half_written": job.problems(engine, work)})
    return records, first


def run_job(job: Job, root: Path, kills: int, jitter: float, seed: int,
            postgres_url: str | None = None) -> dict[str, Any]:
    reference_db = prepare(root / "reference", postgres_url)
    crashed_db = prepare(root / "crashed", postgres_url)
    reference_s = finish(job, reference_db, root / "reference")
    reference = job.census(create_engine(resolve_url(reference_db)), root / "reference")
    total = job.progress(create_engine(resolve_url(reference_db)), root / "reference")
    engine = create_engine(resolve_url(crashed_db))
    records, first = crash(job, engine, crashed_db, root / "crashed", kills, jitter,
                           random.Random(seed))
    for record in records:  # a kill in the middle of the work, or after all was stored
        record["of"] = total
        record["mid_work"] = record.get("done_at_kill", total) < total
    resume_s = finish(job, crashed_db, root / "crashed")
    final = job.census(engine, root / "crashed")
    after = job.snapshot(engine, root / "crashed")
    kept = sum(1 for k, v in first.items() if after.get(k) == v)
    return {
        "kills": records, "reference": {k: reference[k] for k in job.compared},
        "resumed": {k: final[k] for k in job.compared},
        "equal": all(reference[k] == final[k] for k in job.compared),
        "stored_before_first_kill": len(first), "kept_unchanged": kept,
        "half_written_at_end": job.problems(engine, root / "crashed"),
        "not_compared": {"reference": {k: v for k, v in reference.items()
                                       if k not in job.compared},
                         "resumed": {k: v for k, v in final.items() if k not in job.compared}},
        "seconds": {"reference": round(reference_s, 1), "last_rerun": round(resume_s, 1)}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local:smollm2")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="training steps")
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--jitter", type=float, default=2.0,
                        help="most seconds between new stored work and the kill")
    parser.add_argument("--jobs", default="consult,shapley,mcts,train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres-url", help="stores (and LangGraph checkpoints) in new "
                        "databases on this PostgreSQL server instead of SQLite files")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    available = jobs(args.model, args.cases, args.steps)
    results: dict[str, Any] = {"model": args.model, "cases": args.cases,
                               "store": "postgresql" if args.postgres_url else "sqlite"}
    with tempfile.TemporaryDirectory(prefix="crash-resume-") as tmp:
        for name in args.jobs.split(","):
            if name not in available:
                raise SystemExit(f"--jobs: unknown job {name!r} (use {', '.join(available)})")
            results[name] = run_job(available[name], Path(tmp) / name, args.kills,
                                    args.jitter, args.seed, args.postgres_url)
    output = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(output)
    print(output)
    return results


if __name__ == "__main__":
    main()
