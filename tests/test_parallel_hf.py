"""A tiny local (hf) student under pytest-xdist: identical reports for -n 0/2, one worker per model, and
``-n auto`` kept to the number of local models / GPUs."""

from __future__ import annotations

import json

import pytest

from conftest import write_replay
from pytest_skillbench import plugin
from pytest_skillbench.bench import load_bench

TASKS = load_bench("bundled").split("holdout")


def normalised(path) -> dict:
    rep = json.loads(path.read_text())
    for key in ("started", "finished", "run_dir", "command"):
        rep["run"].pop(key, None)
    return rep


@pytest.mark.slow
def test_identical_reports_with_a_tiny_hf_student(pytester, tiny_model_dir, tmp_path):
    replay = write_replay(tmp_path / "toy.jsonl", TASKS)
    mp = [t for t in TASKS if t.skill == "modus-ponens"]
    select = f"{mp[0].task_uid} or {mp[1].task_uid} or {mp[2].task_uid}"  # 3 tasks x 2 conditions x 2 students
    reports = {}
    for n in ("0", "2"):  # -n 0/1/4 on replay and served students: tests/test_parallel.py
        out, run_dir = pytester.path / f"r{n}.json", pytester.path / f"run{n}"
        res = pytester.runpytest_subprocess(
            "-p", "no:randomly", "-p", "no:hypothesispytest", "--student", str(tiny_model_dir), "--student",
            f"replay:{replay}", "-n", n, "-k", select, "--max-new-tokens", "4", "--batch-size", "8",
            "--device", "cpu", f"--skillbench-cache={pytester.path / f'cache{n}'}", f"--skillbench-json={out}",
            f"--skillbench-run-dir={run_dir}")
        assert res.ret in (0, 1), res.stdout.str()[-3000:]
        reports[n] = normalised(out)
        if n == "2":  # --dist loadgroup: every item of the local model ran on one worker (one model load)
            hf_workers = set()
            for shard in (run_dir / "shards").glob("*.jsonl"):
                rows = [json.loads(line) for line in shard.read_text().splitlines()]
                if any(r["student"] == tiny_model_dir.name for r in rows):
                    hf_workers.add(shard.name.split("-")[0])
            assert len(hf_workers) == 1
    assert reports["0"]["students"][tiny_model_dir.name]["conditions"]["curated"]["n"] == 3
    assert reports["0"] == reports["2"]


def test_auto_num_workers(pytester, tiny_model_dir, replay_file, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    second = tiny_model_dir.parent / "second-model"
    if not second.exists():
        second.symlink_to(tiny_model_dir, target_is_directory=True)

    def auto(*args):
        return plugin.pytest_xdist_auto_num_workers(pytester.parseconfig(*args))

    assert auto("--student", f"replay:{replay_file}") is None  # nothing local: xdist's own default
    assert auto("--student", str(tiny_model_dir)) == 1  # one local model: one worker, however many cores
    assert auto("--student", str(tiny_model_dir), "--student", str(second)) == 2
    assert auto("--student", str(tiny_model_dir), "--student", f"replay:{replay_file}") == 8  # served: cores
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert auto("--student", str(tiny_model_dir), "--student", f"replay:{replay_file}") == 2  # one per GPU
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert auto("--student", str(tiny_model_dir)) is None  # the user's explicit choice wins
