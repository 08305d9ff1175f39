"""Storage throughput: turns/s recorded through TraceStore.record_episode.

Writes synthetic consultations (12 turns, 64 policy tokens per doctor turn, one
transaction per episode) into SQLite and PostgreSQL with 1 writer and with 8 concurrent
writer processes, then checks that every episode arrived exactly once. As a comparison
(single writer, SQLite), the same rows are written with the bare sqlite3 driver into the
same schema, one transaction per episode: the ratio is the price of the repository API.

    python benchmarks/storage_throughput.py                  # SQLite + PostgreSQL
    python benchmarks/storage_throughput.py --backends sqlite --episodes 4000

PostgreSQL: --postgres-url URL, else a throwaway server is started with .ci/postgres.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path

from postgres_database import fresh_postgres_db  # benchmarks/postgres_database.py
from sqlalchemy import select

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.storage.models import EpisodeRow
from promed_agents.trace import EpisodeRecord, TurnRecord

ROOT = Path(__file__).resolve().parent.parent


def make_episode(case_id: str, experiment_id: int, writer: int, seq: int,
                 turns: int, tokens: int) -> EpisodeRecord:
    records = []
    for i in range(turns):
        doctor = i % 2 == 0
        records.append(TurnRecord(
            index=i, role="doctor" if doctor else "patient",
            text=f"question: does the pain radiate? ({i})" if doctor else "Yes, to the back.",
            kind="question" if doctor else "reply",
            token_ids=list(range(tokens)) if doctor else None,
            logprobs=[-0.5] * tokens if doctor else None,
            disclosed_fact_ids=[] if doctor else [i % 4], sig=0.1 if doctor else None))
    return EpisodeRecord(case_id=case_id, experiment_id=experiment_id, graph="benchmark",
                         doctor_spec="synthetic", known_fact_ids=[0],
                         metadata={"writer": writer, "seq": seq}, turns=records)


def writer_main(url: str, writer: int, experiment_id: int, case_ids: list[str], count: int,
                turns: int, tokens: int, barrier: mp.Barrier) -> None:
    episodes = [make_episode(case_ids[i % len(case_ids)], experiment_id, writer, i, turns,
                             tokens) for i in range(count)]
    store = TraceStore(url, migrate=False)
    barrier.wait()
    for episode in episodes:
        store.record_episode(episode)
    store.close()


def run_store(url: str, writers: int, episodes: int, turns: int, tokens: int) -> dict:
    with TraceStore(url) as store:
        cases = load_cases(bundled_sample_path())
        store.import_cases([c for c in cases if len(c.facts) >= 4])
        case_ids = [c.id for c in store.list_cases()]
        experiments = [store.create_experiment(f"w{w}-{uuid.uuid4().hex[:6]}", "benchmark")
                       for w in range(writers)]
    per_writer = episodes // writers
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers + 1)
    procs = [ctx.Process(target=writer_main, args=(url, w, experiments[w], case_ids,
                                                   per_writer, turns, tokens, barrier))
             for w in range(writers)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    with TraceStore(url, migrate=False) as store:
        stored_turns = store.count_turns()
        with store.engine.connect() as connection:
            seen = connection.execute(select(EpisodeRow.extra)).scalars().all()
    keys = [(e["writer"], e["seq"]) for e in seen]
    expected = {(w, i) for w in range(writers) for i in range(per_writer)}
    return {
        "writers": writers, "episodes": per_writer * writers,
        "turns": per_writer * writers * turns, "seconds": round(elapsed, 3),
        "turns_per_s": round(per_writer * writers * turns / elapsed),
        "stored_turns": stored_turns, "lost": len(expected - set(keys)),
        "duplicated": len(keys) - len(set(keys)), "writer_failures": failed,
    }


def run_raw_sqlite(path: Path, episodes: int, turns: int, tokens: int) -> dict:
    """The comparison: the same rows through bare sqlite3, one transaction per episode."""
    with TraceStore(f"sqlite:///{path}") as store:
        store.import_cases(load_cases(bundled_sample_path(), limit=5))
    records = [make_episode("imedqa-0", 0, 0, i, turns, tokens) for i in range(episodes)]
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        connection.execute(f"PRAGMA {pragma}")
    start = time.perf_counter()
    for ep in records:
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.execute(
            "INSERT INTO episodes (case_id, graph, mode, partial_policy, known_fact_ids, "
            "doctor_spec, status, num_turns, num_questions, prompt_tokens, "
            "completion_tokens, extra, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (ep.case_id, ep.graph, ep.mode.value, ep.partial_policy.value,
             json.dumps(ep.known_fact_ids), ep.doctor_spec, ep.status.value, len(ep.turns),
             ep.num_questions, 0, 0, json.dumps(ep.stored_metadata()), "2026-01-01 00:00:00"))
        connection.executemany(
            "INSERT INTO turns (episode_id, \"index\", role, text, kind, token_ids, logprobs, "
            "disclosed_fact_ids, sig) VALUES (?,?,?,?,?,?,?,?,?)",
            [(cursor.lastrowid, t.index, t.role.value, t.text, t.kind.value,
              array("i", t.token_ids).tobytes() if t.token_ids else None,
              array("f", t.logprobs).tobytes() if t.logprobs else None,
              json.dumps(t.disclosed_fact_ids), t.sig) for t in ep.turns])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return {"writers": 1, "episodes": episodes, "turns": episodes * turns,
            "seconds": round(elapsed, 3), "turns_per_s": round(episodes * turns / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--writers", default="1,8", help="comma-separated writer counts")
    parser.add_argument("--episodes", type=int, default=2000, help="episodes per run")
    parser.add_argument("--turns", type=int, default=12, help="turns per episode")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per doctor turn")
    parser.add_argument("--postgres-url", default=os.environ.get("PROMED_TEST_PG_URL"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
                          f"Python {platform.python_version()}", "runs": []}
    work = Path(tempfile.mkdtemp(prefix="promed-bench-"))
    pg_state = None
    for backend in args.backends.split(","):
        if backend == "postgres" and not args.postgres_url:
            pg_state = work / "pg"
            started = subprocess.run([str(ROOT / ".ci" / "postgres"), "start", str(pg_state)],
                                     capture_output=True, text=True)
            if started.returncode != 0:
                print(f"postgres skipped: {started.stderr.strip()}", file=sys.stderr)
                continue
            args.postgres_url = started.stdout.strip()
        for writers in (int(w) for w in args.writers.split(",")):
            url = (f"sqlite:///{work / f'{backend}-{writers}.db'}" if backend == "sqlite"
                   else fresh_postgres_db(args.postgres_url))
            run = {"backend": backend, **run_store(url, writers, args.episodes, args.turns,
                                                    args.tokens)}
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
        if backend == "sqlite":
            raw = {"backend": "sqlite-raw-driver",
                   **run_raw_sqlite(work / "raw.db", args.episodes, args.turns, args.tokens)}
            results["runs"].append(raw)
            print(json.dumps(raw), flush=True)
    if pg_state is not None:
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", str(pg_state)], check=False)
    ok = all(r.get("lost", 0) == 0 and r.get("duplicated", 0) == 0 and
             not r.get("writer_failures") and r.get("stored_turns", r["turns"]) == r["turns"]
             for r in results["runs"])
    results["count_check"] = "passed" if ok else "FAILED"
    print(f"count check: {results['count_check']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
