"""pytest-xdist: the same JSON report for -n 0, 1 and 4 (replay and served students; hf: test_parallel_hf.py).

Crashing workers: test_crash.py."""

from __future__ import annotations

import json

import pytest
from chat_students import BenchStudent
from loopback import Loopback

from conftest import write_replay
from pytest_skillbench.bench import load_bench

TASKS = load_bench("bundled").split("holdout")
SELECT = "modus_ponens or straw_man or red_herring or base_rate_neglect"  # 4 skills -> 40 items per student


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:hypothesispytest", *args)


def normalised(path) -> dict:
    rep = json.loads(path.read_text())
    for key in ("started", "finished", "run_dir", "command"):
        rep["run"].pop(key, None)
    return rep


def episodes(path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["student"], r["condition"], r["task_uid"]): r for r in rows}


def section(res) -> list[str]:
    return res.stdout.str().split("= skillbench =", 1)[1].split("\n=")[0].rstrip().splitlines()


@pytest.mark.slow
def test_identical_reports_for_n0_n1_n4_replay_and_served(pytester, tmp_path):
    replay = write_replay(tmp_path / "toy.jsonl", TASKS)
    student = BenchStudent(TASKS)
    pytester.makepyprojecttoml('[tool.skillbench.students."served"]\nbackend = "openai"\n'
                               'base_url = "URL/v1"\nmodel = "m"\nconcurrency = 2\n')
    reports = {}
    with Loopback(student) as lb:
        toml = (pytester.path / "pyproject.toml").read_text().replace("URL", lb.url)
        (pytester.path / "pyproject.toml").write_text(toml)
        for n in ("0", "1", "4"):
            lb.reset()
            out = pytester.path / f"r{n}.json"
            res = run(pytester, "--student", f"replay:{replay}", "--student", "served", "-n", n, "-k", SELECT,
                      "--skillbench-json", str(out), "--skillbench-cache", str(pytester.path / f"cache{n}"),
                      "--gate", "curated.pass_rate>=0.2", "--gate", "delta>=-1")
            assert res.ret == 0, res.stdout.str()[-2000:]
            # each prompt asked exactly once, whatever the number of workers
            assert lb.calls == 40 and len({(r.system, r.prompt) for r in lb.log}) == 40
            reports[n] = normalised(out)
    assert reports["0"]["students"]["served"]["conditions"]["curated"]["n"] == 20
    assert reports["0"] == reports["1"] == reports["4"]
