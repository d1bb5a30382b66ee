"""A worker that dies (os._exit) loses only the item it was running: the report is printed, that episode is
``error`` (xdist's pytest_handlecrashitem on the controller) and exit 3; an episode finished just before the
crash is merged back from the worker's shard."""

from __future__ import annotations

import json


from conftest import write_replay
from pytest_skillbench.bench import load_bench

TASKS = load_bench("bundled").split("holdout")
SELECT = "modus_ponens or straw_man or red_herring or base_rate_neglect"  # 4 skills -> 40 items


def episodes(path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["student"], r["condition"], r["task_uid"]): r for r in rows}


def section(res) -> list[str]:
    return res.stdout.str().split("= skillbench =", 1)[1].split("\n=")[0].rstrip().splitlines()


def test_crashing_workers_lose_only_the_running_item(pytester, tmp_path):
    replay = write_replay(tmp_path / "toy.jsonl", TASKS)
    mp = [t.task_uid for t in TASKS if t.skill == "modus-ponens"]
    lost, finished = mp[0], mp[1]
    ref_out, ref_eps = pytester.path / "ref.json", pytester.path / "ref.jsonl"
    pytester.runpytest_inprocess("-p", "no:randomly", "--student", f"replay:{replay}", "-k", SELECT,
                                 "--skillbench-json", str(ref_out), "--skillbench-episodes", str(ref_eps))
    lost_id = f"holdout.jsonl::modus-ponens[toy-curated-{lost}]"
    finished_id = f"holdout.jsonl::modus-ponens[toy-baseline-{finished}]"
    # Decide "worker" by workerinput, not by PYTEST_XDIST_WORKER: when this test itself runs under xdist the
    # inner controller inherits that variable from the outer worker.
    pytester.makeconftest(
        "import os\n\nIS_WORKER = []\n\n"
        "def pytest_configure(config):\n"
        "    if hasattr(config, 'workerinput'):\n"
        "        IS_WORKER.append(True)\n\n"
        "def pytest_runtest_call(item):  # dies inside the item: its episode is lost\n"
        f"    if IS_WORKER and item.nodeid == {lost_id!r}:\n"
        "        os._exit(1)\n\n"
        "def pytest_runtest_logreport(report):  # dies after the item's shard line, before its report leaves\n"
        f"    if IS_WORKER and report.nodeid == {finished_id!r} "
        "and report.when == 'call':\n"
        "        os._exit(1)\n")
    out, eps = pytester.path / "r.json", pytester.path / "eps.jsonl"
    res = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:hypothesispytest", "--student",
                                        f"replay:{replay}", "-n", "2", "-k", SELECT, "--skillbench-json", str(out),
                                        "--skillbench-episodes", str(eps))
    text = res.stdout.str()
    assert text.count("crashed while running") >= 2 and "= skillbench =" in text  # the report is printed
    got, want = episodes(eps), episodes(ref_eps)
    assert set(got) == set(want) and len(got) == 40  # nothing else lost, nothing duplicated
    lost_key = ("toy", "curated", lost)
    for k in want:
        if k != lost_key:
            assert got[k]["verdict"] == want[k]["verdict"] and got[k]["response"] == want[k]["response"], k
    v = got[lost_key]["verdict"]
    assert v["status"] == "error" and v["reason"] == "worker_crashed" and "crashed while running" in v["rationale"]
    rep = json.loads(out.read_text())
    assert rep["students"]["toy"]["conditions"]["curated"]["errors"] == 1
    assert rep["students"]["toy"]["conditions"]["baseline"]["errors"] == 0  # the finished one came back
    assert res.ret == 3
    assert section(res)[-1].startswith("skillbench exit status 3: 1 episode(s) in error")
