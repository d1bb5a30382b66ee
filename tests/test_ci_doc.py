"""docs/ci.md: the GitHub Actions workflow parses, and its gating step works (bash, real pytest, exit codes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_replay
from pytest_skillbench.bench import load_bench
from pytest_skillbench.cli import main as cli_main

TASKS = load_bench("bundled").split("holdout")


def workflow() -> dict:
    text = (REPO / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1
    return yaml.safe_load(blocks[0])


def test_workflow_is_well_formed():
    wf = workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on
    steps = wf["jobs"]["gate"]["steps"]
    names = [s.get("name") or s.get("uses") for s in steps]
    assert "Evaluate and gate" in names and "actions/checkout@v4" in names
    assert {"STUDENT", "BASELINE", "MARGIN", "SKILLBENCH_CACHE"} <= set(wf["jobs"]["gate"]["env"])


@pytest.mark.skipif(sys.platform == "win32", reason="bash step")
def test_the_gate_step_runs(tmp_path, capsys):
    step = next(s for s in workflow()["jobs"]["gate"]["steps"] if s.get("name") == "Evaluate and gate")
    project = tmp_path / "repo"
    project.mkdir()
    tasks = [t for t in TASKS if t.skill in ("modus-ponens", "straw-man", "red-herring", "tu-quoque")]
    write_replay(project / "v2.0.jsonl", tasks, student="v2.0", seed=5, p_right=0.7, p_format=1.0)
    write_replay(project / "v2.1.jsonl", tasks, student="v2.1", seed=5, p_right=0.7, p_format=1.0)  # same answers
    write_replay(project / "v2.2.jsonl", tasks, student="v2.2", seed=9, p_right=0.1, p_format=1.0)  # much worse
    (project / "pyproject.toml").write_text("".join(
        f'[tool.skillbench.students."{n}"]\nbackend = "replay"\npath = "{n}.jsonl"\n\n' for n in ("v2.0", "v2.1",
                                                                                                  "v2.2")))
    sel = " or ".join(t.task_uid for t in tasks)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SKILLBENCH_CACHE": str(tmp_path / "cache"), "MARGIN": "0.02", "PYTEST_ADDOPTS": f"-k '{sel}'"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--student", "v2.0", "--skillbench-run-dir=runs/v2.0",
                    "-k", sel], cwd=project, env=env, capture_output=True, check=False)
    assert cli_main(["baseline", "save", str(project / "runs" / "v2.0"), "--out",
                     str(project / "baselines" / "v2.0.json")]) == 0
    capsys.readouterr()

    def gate(student: str):
        out = tmp_path / f"github_output_{student}"
        res = subprocess.run(["bash", "-c", step["run"]], cwd=project, capture_output=True, text=True,
                             env={**env, "STUDENT": student, "BASELINE": "baselines/v2.0.json",
                                  "GITHUB_OUTPUT": str(out)}, check=False)
        return res, out.read_text()

    ok, out = gate("v2.1")
    assert ok.returncode == 0 and out.strip() == "status=0", ok.stdout[-2000:]
    assert "every gate holds" in ok.stdout and "gate PASS  non-inferiority v2.1 vs v2.0" in ok.stdout
    assert (project / "reports" / "junit.xml").is_file() and (project / "reports" / "skillbench.json").is_file()
    bad, out = gate("v2.2")
    assert bad.returncode == 1 and out.strip() == "status=1"
    assert "::error::a gate failed: v2.2 is worse than baselines/v2.0.json" in bad.stdout
    assert "gate FAIL  non-inferiority v2.2 vs v2.0" in bad.stdout


def test_ci_runs_the_readme_blocks_as_written():
    """.ci/run reads its set-up + main job and test commands out of README.md (no second copy to drift)."""
    script = (REPO / ".ci" / "run").read_text()
    awk = re.search(r"block\(\) \{.*?\n  (awk .*?)\n\}", script, re.DOTALL).group(1)
    out = {}
    for name in ("setup", "test"):
        res = subprocess.run(["bash", "-c", f'block() {{ {awk.replace("$1", name)}; }}; block'], cwd=REPO,
                             capture_output=True, text=True, check=True)
        out[name] = res.stdout.strip()
    assert 'pip install -e ".[dev]"' in out["setup"]  # the tests' own deps (hypothesis) come with the set-up
    assert out["setup"].endswith("pytest --student smollm2-135m --max-new-tokens 256")
    assert out["test"] == "python -m pytest -n 2"
    assert '"hypothesis' in (REPO / "pyproject.toml").read_text().split("dev = [", 1)[1].split("]", 1)[0]
