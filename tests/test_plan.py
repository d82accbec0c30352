"""``harness plan``: the estimate's arithmetic on a real store with known run times, and its output."""

import pytest

from harness import competition as competition_mod
from harness.grading.plan import estimate, in_order_makespan, longest_first, lpt_makespan
from harness.store import Run, Store


def add(store, sub_id, track, seconds, kind="submission", profile="quick", status="OK", when="2026-12-01T10:00:00+00:00"):
    store.add(Run(submission_id=sub_id, name=sub_id, path=f"/x/{sub_id}", sha256="0" * 64, track=track,
                  profile=profile, status=status, seconds=seconds, kind=kind, created_at=when))


@pytest.fixture
def klass(tmp_path, make_submission, db):
    """Five submissions (a..d classify, e generate) and a store: b has history (latest 30 s), the
    baselines of classify took 10, 20 and 60 s (median 20), no generate baseline exists."""
    subs = [make_submission("baselines/softmax-regression", n) for n in "abcd"]
    subs.append(make_submission("baselines/mlp-gan", "e"))
    with Store(db) as store:
        add(store, "b", "classify", 90.0, when="2026-12-01T09:00:00+00:00")
        add(store, "b", "classify", 30.0, status="CRASH", when="2026-12-01T11:00:00+00:00")  # latest counts
        add(store, "b", "classify", 500.0, profile="full")  # another profile: not used
        for i, s in enumerate((10.0, 60.0, 20.0)):
            add(store, f"base{i}", "classify", s, kind="baseline")
        add(store, "base9", "classify", 999.0, kind="baseline", status="TIMEOUT")  # only OK baselines
    return subs, db


def test_estimate_from_own_history_baseline_median_and_limit(klass):
    subs, db = klass
    comp = competition_mod.load(None)
    limit = float(comp["quick"]["time_limit_seconds"])
    with Store(db) as store:
        plan = estimate(subs, store, comp, ("classify", "generate"), quick=True, jobs=1, startup_seconds=3.0)
    per = {i.submission_id: i.tracks for i in plan.items}
    assert per["b"] == {"classify": (30.0, "own")}
    assert per["a"] == per["c"] == per["d"] == {"classify": (20.0, "baselines")}
    assert per["e"] == {"generate": (limit, "limit")}  # no run to go by: the time limit, flagged
    assert plan.busy_seconds == 30 + 3 * 20 + limit
    assert plan.wall_seconds == 3.0 + plan.busy_seconds  # one slot: everything in a row
    by = plan.by_track()
    assert by["classify"]["submissions"] == 4 and by["classify"]["total"] == 90.0


def test_schedule_over_nodes_and_jobs(klass):
    subs, db = klass
    comp = competition_mod.load(None)
    with Store(db) as store:
        # classify only: a 20, b 30, c 20, d 20 (e enters no classify: 0 s)
        two_jobs = estimate(subs, store, comp, ("classify",), quick=True, jobs=2, startup_seconds=0)
        two_nodes = estimate(subs, store, comp, ("classify",), quick=True, nodes=2, jobs=1, gpus=1,
                             cpus_per_node=4, startup_seconds=5)
    # in order a, b, c, d, e over 2 slots: a 0-20 | b 0-30 | c 20-40 | d 30-50 | e 40-40 -> 50
    assert two_jobs.wall_seconds == 50.0
    assert two_jobs.ideal_wall_seconds == 50.0  # 30+20 | 20+20: longest-first packs no better here
    # shards: node 1 gets a, c, e (sorted[0::2]) = 40 s; node 2 gets b, d = 50 s
    assert two_nodes.node_seconds == [40.0, 50.0]
    assert two_nodes.wall_seconds == 55.0
    assert two_nodes.core_hours == pytest.approx(2 * 4 * 55 / 3600)
    assert two_nodes.gpu_hours == pytest.approx(2 * 1 * 55 / 3600)


def test_in_order_and_longest_first():
    assert in_order_makespan([1, 1, 1, 1, 4], 2) == 6.0
    assert lpt_makespan([1, 1, 1, 1, 4], 2) == 4.0
    assert in_order_makespan([], 3) == 0.0


def test_cli_prints_the_table_and_the_summary(klass, harness_cli):
    subs, db = klass
    code, out, err = harness_cli("plan", *subs, "--quick", "--db", db, "--jobs", "2", "--nodes", "1",
                                 "--gpus", "1", "--cpus", "2", "--startup", "0")
    assert code == 0, err
    assert "plan: 5 submissions, quick profile, 1 node(s) x 2 job(s)" in out
    assert "own last run (1)" in out and "median of baselines (3)" in out and "time limit (no runs stored)" in out
    # wall: a 20 | b 30 | c 20 (20-40) | d 20 (30-50) | e 600 (40-640) -> 640 s
    assert "estimate: wall 10:40 (640 s" in out
    assert "0.36 core-hours allocated (1 x 2 cores), 0.18 GPU-hours" in out
    assert "harness baselines --quick" in err  # says how to get a better estimate than the limit


def test_cli_refuses_bad_input(klass, harness_cli, tmp_path):
    subs, db = klass
    code, _, err = harness_cli("plan", tmp_path / "nope", "--db", db)
    assert code == 2 and "not a folder" in err
    code, _, err = harness_cli("plan", *subs, "--db", db, "--track", "nosuch")
    assert code == 2 and "--track nosuch: unknown track" in err
    with pytest.raises(SystemExit):
        harness_cli("plan", *subs, "--db", db, "--nodes", "0")


def test_longest_first_orders_the_jobs_by_expected_seconds(klass):
    """--jobs N starts the longest first: b (own run, 30 s) before a, c, d (baselines' median, 20 s,
    in the order given), and e (no generate run anywhere: the time limit) before all."""
    subs, db = klass
    comp = competition_mod.load(None)
    todo = [(p, ("classify",)) for p in subs[:4]] + [(subs[4], ("generate",))]
    with Store(db) as store:
        order = [p.name for p, _ in longest_first(todo, store, comp, quick=True)]
        assert order == ["e", "b", "a", "c", "d"]
        # baselines go by their own runs (kind "baseline"): base1's 60 s before base0's 10 s
        bases = [(p.with_name(f"base{i}"), ("classify",)) for i, p in enumerate(subs[:2])]
        assert [p.name for p, _ in longest_first(bases, store, comp, True, "baseline")] == ["base1", "base0"]
