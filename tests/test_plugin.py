"""End-to-end plugin behaviour through pytester: real pytest sessions, run in process (half the time of a
subprocess each; the installed entry point, a fresh interpreter and xdist workers are covered by the subprocess
runs in test_parallel.py, test_crash.py and test_hermetic.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import write_replay


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:randomly", *args)


def test_without_student_plugin_is_inert(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    res = run(pytester)
    res.assert_outcomes(passed=1)
    assert "= skillbench =" not in res.stdout.str()
    assert not (pytester.path / ".skillbench").exists()


def test_replay_session_report_and_json(pytester, replay_file):
    out = pytester.path / "r.json"
    eps = pytester.path / "eps.jsonl"
    res = run(pytester, "--student", f"replay:{replay_file}", "--skillbench-json", str(out),
              "--skillbench-episodes", str(eps), "-q")
    report = json.loads(out.read_text())
    st = report["students"]["toy"]
    lines = [json.loads(line) for line in eps.read_text().splitlines()]
    assert len(lines) == 400
    for cond in ("baseline", "curated"):
        c = st["conditions"][cond]
        rows = [e for e in lines if e["condition"] == cond]
        assert c["n"] == 200
        assert c["passed"] == sum(e["verdict"]["status"] == "passed" for e in rows)
        assert c["unscored"] == sum(e["verdict"]["status"] == "unscored" for e in rows)
        assert c["pass_rate"] == pytest.approx(c["passed"] / (c["passed"] + c["failed"]))
        assert c["ci95"][0] < c["pass_rate"] < c["ci95"][1]
    d = st["delta"]
    assert set(d) >= {"value", "ci95", "n_pairs", "mcnemar"}
    assert set(d["mcnemar"]) == {"b", "c", "statistic", "p", "method"}
    outcomes = res.parseoutcomes()
    total_passed = sum(st["conditions"][c]["passed"] for c in ("baseline", "curated"))
    assert outcomes["passed"] == total_passed
    assert outcomes["unscored"] == sum(st["conditions"][c]["unscored"] for c in ("baseline", "curated"))
    assert "Δ toy" in res.stdout.str()
    assert "run" in report and report["run"]["bench_hash"]


def test_failure_message_is_three_lines_no_traceback(pytester, tmp_path, bundled_bench):
    task = next(t for t in bundled_bench.split("holdout") if t.query_type == "YES_NO")
    wrong = "no" if task.answer == "yes" else "yes"
    f = tmp_path / "w.jsonl"
    f.write_text(json.dumps({"task_uid": task.task_uid, "condition": "baseline", "response": f"ANSWER: {wrong}"}))
    res = run(pytester, "--student", f"replay:{f}", "--condition", "baseline", "-k", task.task_uid)
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    assert f"expected:  {task.answer}" in out and f"extracted: {wrong}" in out and "rationale:" in out
    assert "Traceback" not in out and "site-packages" not in out


@pytest.mark.slow
def test_item_ids_keywords_and_markers(pytester, replay_file, bundled_bench):
    res = run(pytester, "--student", f"replay:{replay_file}", "--collect-only", "-q", "--strict-markers")
    ids = [line for line in res.stdout.lines if "::" in line]
    assert len(ids) == 400
    t = bundled_bench.split("holdout")[0]
    assert f"holdout.jsonl::{t.skill}[toy-baseline-{t.task_uid}]" in ids
    res2 = run(pytester, "--student", f"replay:{replay_file}", "--collect-only", "-q")
    assert [line for line in res2.stdout.lines if "::" in line] == ids  # deterministic order

    res = run(pytester, "--student", f"replay:{replay_file}", "--collect-only", "-q", "-k", "modus_ponens")
    sel = [line for line in res.stdout.lines if "::" in line]
    assert len(sel) == 10 and all("modus-ponens[" in s for s in sel)

    res = run(pytester, "--student", f"replay:{replay_file}", "--collect-only", "-q", "-k", "curated and not yes_no")
    sel = [line for line in res.stdout.lines if "::" in line]
    n_other = sum(t.query_type != "YES_NO" for t in bundled_bench.split("holdout"))
    assert len(sel) == n_other and all("-curated-" in s for s in sel)

    res = run(pytester, "--student", f"replay:{replay_file}", "--collect-only", "-q", "-m", "baseline and logical",
              "--strict-markers")
    assert res.ret == 0
    sel = [line for line in res.stdout.lines if "::" in line]
    assert sel and all("-baseline-" in s for s in sel)


def test_last_failed_reruns_only_failures(pytester, replay_file):
    first = run(pytester, "--student", f"replay:{replay_file}", "-q")
    failed = first.parseoutcomes()["failed"]
    second = run(pytester, "--student", f"replay:{replay_file}", "-q", "--lf")
    second.assert_outcomes(failed=failed, deselected=400 - failed)


@pytest.mark.slow
def test_collection_is_counted_by_pytest(pytester, replay_file, bundled_bench):
    """Items come from a real collector: pytest counts them before -k deselects (--co, -q, xdist, JUnit)."""
    tasks = bundled_bench.split("holdout")
    total, mp = 2 * len(tasks), 2 * sum(t.skill == "modus-ponens" for t in tasks)
    co = run(pytester, "--student", f"replay:{replay_file}", "--co", "-k", "modus_ponens")
    assert co.ret == 0
    co.stdout.fnmatch_lines([f"*{mp}/{total} tests collected ({total - mp} deselected)*"])
    assert "<SkillbenchCollector holdout.jsonl>" in co.stdout.str()
    assert not (pytester.path / ".skillbench").exists()  # --co runs nothing and writes no run
    res = run(pytester, "--student", f"replay:{replay_file}", "-q", "-k", "modus_ponens",
              "--junitxml", str(pytester.path / "j.xml"))
    outcomes = res.parseoutcomes()
    assert outcomes["deselected"] == total - mp
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "unscored")) == mp
    junit = (pytester.path / "j.xml").read_text()
    assert junit.count("<testcase ") == mp
    dist = run(pytester, "--student", f"replay:{replay_file}", "-n", "2", "-k", "modus_ponens")
    dist.stdout.fnmatch_lines([f"*2 workers [[]{mp} items[]]*"])


@pytest.mark.slow
def test_xdist_gives_the_same_numbers(pytester, replay_file):
    reports = []
    for n in ("0", "2"):
        out = pytester.path / f"r{n}.json"
        run(pytester, "--student", f"replay:{replay_file}", "-n", n, "--skillbench-json", str(out), "-q")
        rep = json.loads(out.read_text())
        reports.append(rep["students"])
    assert reports[0] == reports[1]


def test_unknown_student_is_one_clear_error(pytester):
    res = run(pytester, "--student", "no-such-student")
    assert res.ret == 4
    err = res.stderr.str()
    assert "unknown student 'no-such-student'" in err
    assert "Traceback" not in err


def test_broken_registry_entry_is_one_error(pytester):
    pytester.makepyprojecttoml('[tool.skillbench.students."v2.0"]\nbackend = "hf"\nadapter = "missing-dir"\n')
    res = run(pytester, "--student", "v2.0")
    assert res.ret == 4
    assert "adapter directory has no adapter_config.json" in res.stderr.str()
    assert res.stderr.str().count("skillbench:") == 1


def test_llm_judge_mode_without_backend_credentials_is_one_clear_error(pytester, replay_file, monkeypatch):
    """An LLM judge mode whose backend cannot be reached (the default anthropic judge without its key) stops
    the session at start with one line naming what is missing -- not a judge error per episode."""
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    res = run(pytester, "--student", f"replay:{replay_file}", "--judge", "llm-only")
    err = res.stderr.str()
    assert res.ret == 4, res.stdout.str()[-1500:]
    assert "ANTHROPIC_API_KEY" in err and err.count("skillbench:") == 1 and "Traceback" not in err


def test_pyproject_settings_apply(pytester, replay_file):
    pytester.makepyprojecttoml('[tool.skillbench]\ncondition = ["curated"]\nskillbench-json = "out.json"\n')
    run(pytester, "--student", f"replay:{replay_file}", "-q")
    rep = json.loads((pytester.path / "out.json").read_text())
    assert list(rep["students"]["toy"]["conditions"]) == ["curated"]


def test_nested_project_uses_its_own_skillbench_table(pytester, tmp_path, bundled_bench):
    """pytest takes its ini file from the outer repository; the registry must still come from the nested
    project the command runs in (the benchmark's scratch project is such a case)."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\naddopts = ""\n\n'
                               '[tool.skillbench]\ncondition = ["baseline"]\n')
    replay_file = write_replay(tmp_path / "mine.jsonl", bundled_bench.split("holdout"), student="mine")
    inner = pytester.mkdir("sub")
    (inner / "pyproject.toml").write_text(
        '[tool.skillbench]\ncondition = ["curated"]\nskillbench-json = "inner.json"\n\n'
        f'[tool.skillbench.students.mine]\nbackend = "replay"\npath = "{replay_file.as_posix()}"\n')
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
                           "--student", "mine"], cwd=inner, capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    rep = json.loads((inner / "inner.json").read_text())
    assert [list(v["conditions"]) for v in rep["students"].values()] == [["curated"]]


def test_silent_phase_reports_of_skillbench_items_are_dropped_before_the_summary(pytester, replay_file):
    """pytest's failure summary scans every setup/teardown report per failure (quadratic); the plugin drops
    its items' silent ones first. Failures still print."""
    pytester.makeconftest(
        "SEEN = []\n"
        "def pytest_runtest_logreport(report):\n"
        "    if report.when in ('setup', 'teardown') and report.passed:\n"
        "        SEEN.append(report.nodeid)\n"
        "def pytest_terminal_summary(terminalreporter):\n"
        "    left = sum('.jsonl::' in r.nodeid for r in terminalreporter.stats.get('', []))\n"
        "    open('phase.txt', 'w').write(f'{len(SEEN)} {left}')\n")
    res = run(pytester, "--student", f"replay:{replay_file}", "-q", "-rf")
    seen, left = map(int, (pytester.path / "phase.txt").read_text().split())
    assert seen == 800 and left == 0  # 400 items x (setup, teardown) reported, none kept for the summary
    out = res.stdout.str()
    assert "expected:" in out and "FAILED" in out and "passed" in out


def test_replay_missing_response_is_error_not_failure(pytester, tmp_path, bundled_bench):
    tasks = bundled_bench.split("holdout")[:3]
    f = write_replay(tmp_path / "part.jsonl", tasks[:2], student="part", p_right=1.0, p_format=1.0)
    out = pytester.path / "r.json"
    res = run(pytester, "--student", f"replay:{f}", "-k", " or ".join(t.task_uid for t in tasks),
              "--skillbench-json", str(out))
    rep = json.loads(out.read_text())["students"]["part"]["conditions"]
    # two tasks answered right in both conditions, the third has no stored response: error, not failed
    assert rep["baseline"]["errors"] == 1 and rep["baseline"]["failed"] == 0
    assert res.ret != 0
    assert "WARNING" in res.stdout.str()


def test_without_pyproject_the_run_directory_is_not_put_in_the_bench_s_data_folder(pytester, bundled_bench,
                                                                                     tmp_path_factory):
    """pytest takes its rootdir from paths given as option values (here the --bench file and the replay file,
    in a data folder outside the project: the rootdir becomes their common ancestor with the invocation
    directory, or the data folder itself); with no pyproject.toml in reach, the run goes where pytest was
    invoked."""
    from pytest_skillbench.bench.tasks import write_tasks

    data = tmp_path_factory.mktemp("data")
    tasks = bundled_bench.split("holdout")[:6]
    write_tasks(data / "mine.jsonl", tasks)
    replay = write_replay(data / "toy.jsonl", tasks)
    assert not any((p / "pyproject.toml").is_file() for p in (pytester.path, *pytester.path.parents))
    res = run(pytester, "--student", f"replay:{replay}", "--bench", str(data / "mine.jsonl"), "-q")
    assert res.ret in (0, 1), res.stdout.str() + res.stderr.str()
    for elsewhere in (data, *data.parents):
        assert not (elsewhere / ".skillbench").exists(), elsewhere
    runs = list((pytester.path / ".skillbench" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "report.json").is_file()
