"""The store's work queue: each item claimed by one worker; a lapsed claim comes free."""

from __future__ import annotations

import time

from promed_agents.storage import TraceStore


def test_items_are_claimed_once_and_done_items_are_left(db_url):
    with TraceStore(db_url) as store:
        items = ["a", "b", "c"]
        assert store.claim_work("job", items, "w1", limit=2, lease_s=60) == ["a", "b"]
        assert store.claim_work("job", items, "w2", limit=2, lease_s=60) == ["c"]
        assert store.claim_work("job", items, "w3", lease_s=60) == []  # all held
        store.finish_work("job", "a", "w1")
        assert store.work_left("job") == 2 and store.work_done("job") == {"a"}
        assert store.claim_work("other", ["a"], "w1", lease_s=60) == ["a"]  # jobs are apart


def test_a_lapsed_claim_goes_to_another_worker_and_finishing_renews_claims(db_url):
    with TraceStore(db_url) as store:
        assert store.claim_work("job", ["a", "b", "c"], "dead", limit=2, lease_s=60) == \
            ["a", "b"]
        assert store.claim_work("job", ["a", "b", "c"], "live", lease_s=60) == ["c"]
        time.sleep(1.2)
        store.finish_work("job", "c", "live")  # renews live's claims (none left)
        assert store.claim_work("job", [], "other", limit=5, lease_s=1) == ["a", "b"]
        store.finish_work("job", "a", "other")
        store.finish_work("job", "b", "other")
        assert store.work_left("job") == 0


def test_a_worker_keeps_its_claims_while_it_finishes_items(db_url):
    with TraceStore(db_url) as store:
        assert store.claim_work("job", ["a", "b"], "busy", limit=2, lease_s=1) == ["a", "b"]
        time.sleep(1.2)
        store.finish_work("job", "a", "busy")  # alive: its claim of b is renewed
        assert store.claim_work("job", [], "other", lease_s=1) == []


def test_a_worker_takes_back_its_own_leftovers_and_gives_claims_back_when_it_stops(db_url):
    with TraceStore(db_url) as store:
        assert store.claim_work("job", ["a", "b"], "w", limit=2, lease_s=60) == ["a", "b"]
        # its own claims, left by a try that stopped, are free to it
        assert store.claim_work("job", [], "w", limit=1, lease_s=60) == ["a"]
        store.release_work("job", "w")  # stopped on an error: the others need not wait
        assert store.claim_work("job", [], "other", limit=2, lease_s=60) == ["a", "b"]
        store.claim_work("job:sub", ["x"], "w", lease_s=60)
        store.clear_work("job")  # a new run starts empty, its sub-jobs with it
        assert store.work_left("job") == store.work_left("job:sub") == 0
