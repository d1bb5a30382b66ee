"""LLM judging inside pytest sessions (pytester, in-process) against the loopback Anthropic server:
``--judge llm-only`` / ``both`` with a replay student, the judgment cache across sessions,
``--skillbench-rejudge``, ``skillbench rejudge RUN``, and the ``pytest_skillbench_judge`` hook.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from loopback import Loopback, Ok, Status, lenient_judge, names_gold

from pytest_skillbench import cli
from pytest_skillbench.episodes import read_episodes
from pytest_skillbench.judges import deterministic, llm


@pytest.fixture(scope="module")
def picked(bundled_bench):
    """The tasks of two skills (10 tasks, 20 episodes) and the -k expression selecting them."""
    holdout = bundled_bench.split("holdout")
    skills = []
    for t in holdout:
        if t.skill not in skills:
            skills.append(t.skill)
    skills = skills[:2]
    tasks = [t for t in holdout if t.skill in skills]
    return tasks, " or ".join(s.replace("-", "_") for s in skills)


def response_for(task, k: int) -> str:
    wrong = ("no" if task.answer == "yes" else "yes") if task.query_type == "YES_NO" else "zzz"
    return ["Working through the passage.\nANSWER: {gold}",  # right, with an ANSWER line
            "Working through the passage, the conclusion is {gold}.",  # right in prose: no ANSWER line
            "Working through it.\nANSWER: {wrong}",  # wrong
            "Hmm, unclear."][k % 4].format(gold=task.answer, wrong=wrong)


@pytest.fixture(scope="module")
def replay(picked, tmp_path_factory):
    tasks, _ = picked
    path = tmp_path_factory.mktemp("replay") / "toy.jsonl"
    rows, expected = [], {}
    for i, t in enumerate(tasks):
        for j, cond in enumerate(("baseline", "curated")):
            text = response_for(t, 2 * i + j + i // 2)
            rows.append(json.dumps({"task_uid": t.task_uid, "condition": cond, "response": text, "student": "toy"}))
            expected[(t.task_uid, cond)] = ("passed" if names_gold(t.answer, text) else "failed",
                                            deterministic.judge(t, text))
    path.write_text("\n".join(rows) + "\n")
    return path, expected


@pytest.fixture
def server(monkeypatch):
    with Loopback() as lb:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", lb.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield lb


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:randomly", "-q", *args)


def judge_args(replay_path, kexpr, mode="llm-only", *extra):
    return ("--student", f"replay:{replay_path}", "--judge", mode, "--judge-backend", "anthropic", "--judge-model",
            "loopback-judge", "--judge-backoff", "0.01", "-k", kexpr, *extra)


def test_llm_only_then_both_from_the_cache(pytester, server, picked, replay, tmp_path):
    _, kexpr = picked
    path, expected = replay
    cache = tmp_path / "cache"
    r1 = tmp_path / "r1.json"
    res = run(pytester, *judge_args(path, kexpr, "llm-only", "--skillbench-cache", str(cache),
                                    "--skillbench-json", str(r1)))
    assert server.calls == 20  # one request per distinct response, concurrently, before the items ran
    report = json.loads(r1.read_text())
    st = report["students"]["toy"]
    for cond in ("baseline", "curated"):
        want = Counter(v[0] for (uid, c), v in expected.items() if c == cond)
        c = st["conditions"][cond]
        assert (c["passed"], c["failed"], c["unscored"], c["errors"]) == (want["passed"], want["failed"], 0, 0)
        assert c["judges"] == ["anthropic:loopback-judge"]
    assert report["run"]["judge"]["prompt_version"] == llm.JUDGE_PROMPT_VERSION
    assert report["run"]["judge"]["mode"] == "llm-only" and report["run"]["judge"]["concurrency"] == 8
    out = res.stdout.str()
    assert "anthropic:loopback-judge" in out and "[judge: anthropic:loopback-judge]" in out
    res.assert_outcomes(passed=sum(v[0] == "passed" for v in expected.values()),
                        failed=sum(v[0] == "failed" for v in expected.values()))

    # --judge both on the same responses: every LLM verdict comes from the cache, the deterministic one
    # is recorded beside it and the report shows where they disagree
    r2 = tmp_path / "r2.json"
    eps = tmp_path / "eps.jsonl"
    res = run(pytester, *judge_args(path, kexpr, "both", "--skillbench-cache", str(cache), "--skillbench-json",
                                    str(r2), "--skillbench-episodes", str(eps)))
    assert server.calls == 20  # zero new HTTP calls
    report = json.loads(r2.read_text())
    dis = report["students"]["toy"]["judge_disagreements"]
    for cond in ("baseline", "curated"):
        rows = [v for (uid, c), v in expected.items() if c == cond]
        artifact = sum(llm_s == "passed" and det.status == "unscored" and det.reason == "no_answer_line"
                       for llm_s, det in rows)
        assert artifact > 0
        assert dis[cond]["format_artifact"] == artifact
        assert dis[cond]["n"] == 10 and dis[cond]["agree"] == sum(llm_s == det.status for llm_s, det in rows)
    for ep in read_episodes(eps):
        v = ep.extra["verdicts"]
        assert ep.verdict.judge == "anthropic:loopback-judge" and v["llm"]["status"] == ep.verdict.status
        assert v["deterministic"]["status"] == expected[(ep.task_uid, ep.condition)][1].status
    assert "format artifact" in res.stdout.str()


def test_faults_then_rejudge_in_session_and_cli(pytester, server, picked, replay, tmp_path):
    _, kexpr = picked
    path, expected = replay
    # the first 4 distinct prompts: 500 forever (1 attempt) -> error; the next 2: not JSON -> unscored
    server.behaviour = lambda r: Status(500) if r.rank < 4 else (Ok("looks right to me") if r.rank < 6
                                                                  else lenient_judge(r))
    first = pytester.path / ".skillbench" / "runs" / "first"
    run(pytester, *judge_args(path, kexpr, "llm-only", "--judge-max-attempts", "1", "--skillbench-run-dir",
                              str(first)))
    report = json.loads((first / "report.json").read_text())
    conds = report["students"]["toy"]["conditions"].values()
    assert sum(c["errors"] for c in conds) == 4 and sum(c["unscored"] for c in conds) == 2
    assert report["judging"]["errors"] == 4 and report["judging"]["unscored"] == 2 and report["judging"]["warning"]
    stored = read_episodes(first / "episodes.jsonl")
    assert Counter(e.verdict.reason for e in stored if not e.verdict.scored) == {"judge_unavailable": 4,
                                                                                 "judge_parse_failure": 2}
    assert all(e.verdict.status != "failed" or names_gold(e.verdict.expected, e.response) is False for e in stored)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)

    # --skillbench-rejudge: the scored 14 are reused, only the 6 error / unscored are judged again
    server.behaviour = lenient_judge
    server.reset()
    second = pytester.path / ".skillbench" / "runs" / "second"
    run(pytester, *judge_args(path, kexpr, "llm-only", "--skillbench-rejudge", "--skillbench-run-dir",
                              str(second)))
    assert server.calls == 6
    report = json.loads((second / "report.json").read_text())
    assert report["judging"]["errors"] == 0 and report["judging"]["unscored"] == 0
    assert report["run"]["judge"]["rejudged_from"] == str(first)
    got = {(e.task_uid, e.condition): e.verdict.status for e in read_episodes(second / "episodes.jsonl")}
    assert got == {k: v[0] for k, v in expected.items()}

    # skillbench rejudge RUN: the same, offline, rewriting the run in place
    server.reset()
    assert cli.main(["rejudge", str(copy), "--judge-backoff", "0.01", "--cache", str(tmp_path / "c2")]) == 0
    assert server.calls == 6
    eps = read_episodes(copy / "episodes.jsonl")
    assert {(e.task_uid, e.condition): e.verdict.status for e in eps} == {k: v[0] for k, v in expected.items()}
    redone = [e for e in eps if "previous_verdicts" in e.extra]
    assert len(redone) == 6 and {e.extra["previous_verdicts"][0]["status"] for e in redone} == {"error", "unscored"}
    rep = json.loads((copy / "report.json").read_text())
    assert rep["judging"]["errors"] == 0 and rep["judging"]["unscored"] == 0
    man = json.loads((copy / "manifest.json").read_text())
    assert man["rejudges"][0]["episodes"] == 6 and man["rejudges"][0]["before"] == {"error": 4, "unscored": 2}
    server.reset()
    assert cli.main(["rejudge", str(copy), "--json"]) == 0  # nothing left to re-judge
    assert server.calls == 0


def test_missing_key_is_a_usage_error(pytester, picked, replay, monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    path, _ = replay
    res = run(pytester, *judge_args(path, picked[1]))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "ANTHROPIC_API_KEY" in res.stderr.str()


def test_rejudge_without_a_stored_run_is_a_usage_error(pytester, picked, replay):
    path, _ = replay
    res = run(pytester, "--student", f"replay:{path}", "--skillbench-rejudge", "-k", picked[1])
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "no stored run" in res.stderr.str()


CONFTEST = '''
def pytest_skillbench_judge(task, response, condition, config):
    """A project judge for YES_NO tasks: the last word decides; everything else goes to --judge."""
    if task.query_type != "YES_NO":
        return None
    last = response.strip().rstrip(".").split()[-1].lower()
    return {"passed": last == task.answer, "judge": "project-judge", "rationale": "last word " + last}
'''


def test_judge_hook_in_conftest(pytester, picked, replay, tmp_path):
    tasks, kexpr = picked
    path, _ = replay
    pytester.makeconftest(CONFTEST)
    out = tmp_path / "r.json"
    eps = tmp_path / "eps.jsonl"
    run(pytester, "--student", f"replay:{path}", "-k", kexpr, "--skillbench-json", str(out),
        "--skillbench-episodes", str(eps))
    episodes = read_episodes(eps)
    by_type = {t.task_uid: t.query_type for t in tasks}
    for e in episodes:
        if by_type[e.task_uid] == "YES_NO":
            last = e.response.strip().rstrip(".").split()[-1].lower()
            assert e.verdict.judge == "project-judge"
            assert e.verdict.status == ("passed" if last == e.verdict.expected else "failed")
        else:
            assert e.verdict.judge == "deterministic"
    report = json.loads(out.read_text())
    assert report["students"]["toy"]["conditions"]["baseline"]["judges"] == ["deterministic", "project-judge"]
