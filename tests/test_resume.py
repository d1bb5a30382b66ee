"""kill -9 of a running session, then the same command: finished generations and episodes are reused, none
repeated, none lost, and the report equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chat_students import BenchStudent
from loopback import Loopback

from conftest import write_replay
from pytest_skillbench.bench import load_bench

TASKS = load_bench("bundled").split("holdout")
SELECT = "modus_ponens or straw_man or red_herring or base_rate_neglect or hindsight_bias or tu_quoque"  # 60


def _command(cache: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:hypothesispytest", "-q",
            "--student", "served", "-k", SELECT, f"--skillbench-cache={cache}", f"--skillbench-json={out}"]
    # (OPT=VALUE: pytest reads "--opt PATH" of a plugin option as a test path while it finds the rootdir)


def _lines(paths) -> list[dict]:
    rows = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line torn by the kill
    return rows


def test_kill_9_then_same_command_resumes(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    student = BenchStudent(TASKS, delay=0.05)
    with Loopback(student) as lb:
        (project / "pyproject.toml").write_text(
            f'[tool.skillbench.students."served"]\nbackend = "openai"\nbase_url = "{lb.url}/v1"\nmodel = "m"\n'
            "concurrency = 2\nmax_retries = 0\n")
        cache, out = tmp_path / "cache", tmp_path / "r.json"
        cmd = _command(cache, out)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while lb.calls < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        (killed,) = list((project / ".skillbench" / "runs").iterdir())
        assert not (killed / "report.json").exists()
        cached = len(list((cache / "generations").rglob("*.json")))
        before = _lines(sorted((killed / "shards").glob("*.jsonl")))
        assert 0 < cached < 60 and 0 < len(before) <= cached

        lb.reset()
        again = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env, timeout=300, check=False)
        assert again.returncode in (0, 1), again.stdout[-3000:] + again.stderr[-3000:]
        assert lb.calls == 60 - cached  # every finished generation reused, every missing one made once
        # an uninterrupted run for reference (its own cache and project)
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        (fresh / "pyproject.toml").write_text((project / "pyproject.toml").read_text())
        ref_out = tmp_path / "ref.json"
        subprocess.run(_command(tmp_path / "cache2", ref_out), cwd=fresh, capture_output=True, env=env, timeout=300,
                       check=False)

    # the same run directory was resumed: its earlier episodes were reused, not judged again
    assert list((project / ".skillbench" / "runs").iterdir()) == [killed]
    assert f"resuming {killed}: {len(before)} finished episode(s) are reused" in again.stdout + again.stderr
    shards = sorted((killed / "shards").glob("*.jsonl"))
    rows = _lines(shards)  # the killed process's shard + the resumed one's: each item exactly once
    assert len(shards) == 2 and len(rows) == 60
    assert len({(r["student"], r["condition"], r["task_uid"]) for r in rows}) == 60
    eps = [json.loads(line) for line in (killed / "episodes.jsonl").read_text().splitlines()]
    keys = [(e["student"], e["condition"], e["task_uid"]) for e in eps]
    assert len(eps) == 60 and len(set(keys)) == 60
    by_uid = {t.task_uid: t for t in TASKS}
    for e in eps:  # nothing corrupted: every response is what the server answered for that prompt
        assert e["response"] == student.answer_text("m", e["condition"] == "curated", by_uid[e["task_uid"]])
    rep, ref = json.loads(out.read_text()), json.loads(ref_out.read_text())
    assert rep["students"] == ref["students"] and rep["gates"] == ref["gates"]


def test_other_settings_never_mix_into_a_reused_run_dir(pytester, tmp_path):
    a = write_replay(tmp_path / "toy.jsonl", TASKS, seed=1)
    run_dir = pytester.path / "run"
    first = pytester.runpytest_inprocess("-p", "no:randomly", "--student", f"replay:{a}", "-k", "modus_ponens",
                                         "--skillbench-run-dir", str(run_dir))
    assert first.ret in (0, 1)
    # same command, same run dir: the finished episodes are reused
    again = pytester.runpytest_inprocess("-p", "no:randomly", "--student", f"replay:{a}", "-k", "modus_ponens",
                                         "--skillbench-run-dir", str(run_dir))
    assert "10 finished episode(s) are reused" in again.stdout.str() + again.stderr.str()
    # other settings (one condition only): the old shards are moved aside, never merged
    other = pytester.runpytest_inprocess("-p", "no:randomly", "--student", f"replay:{a}", "-k", "modus_ponens",
                                         "--condition", "curated", "--skillbench-run-dir", str(run_dir))
    assert "moved aside" in other.stdout.str() + other.stderr.str()
    eps = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(eps) == 5 and {e["condition"] for e in eps} == {"curated"}
    assert list(run_dir.glob("shards.stale-*"))
