"""Status and reason constants (``episodes.Status``, ``episodes.Reason``): one spelling, plain strings on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pytest_skillbench import forcing
from pytest_skillbench.episodes import FORMAT_REASONS, SCORED, STATUSES, Episode, Reason, Status, Verdict
from pytest_skillbench.judges import deterministic, llm
from pytest_skillbench.report import judging
from pytest_skillbench.runs.state import CRASH_REASON

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_skillbench"


def test_statuses_are_plain_strings():
    assert STATUSES == ("passed", "failed", "unscored", "error")
    assert SCORED == ("passed", "failed")
    assert all(type(s) is str for s in STATUSES)  # not a str subclass: JSON, YAML and execnet see a str


def test_a_verdict_built_from_constants_serialises_as_before():
    v = Verdict(status=Status.UNSCORED, expected="yes", judge="deterministic", reason=Reason.NO_ANSWER_LINE)
    ep = Episode("s", "baseline", "t1", "modus-ponens", "YES_NO", "no answer", v)
    line = json.dumps(ep.to_dict(), ensure_ascii=False)
    assert '"status": "unscored"' in line and '"reason": "no_answer_line"' in line
    assert Episode.from_dict(json.loads(line)) == ep
    assert Episode.from_dict({**json.loads(line), "verdict": None}).verdict.reason == Reason.MISSING_VERDICT


def test_modules_share_one_spelling_of_each_reason(bundled_bench):
    assert forcing.FORCE_REASONS is FORMAT_REASONS
    assert judging.FORMAT_REASONS is FORMAT_REASONS
    assert llm.PARSE_FAILURE == Reason.JUDGE_PARSE_FAILURE and CRASH_REASON == Reason.WORKER_CRASHED
    tasks = {t.query_type: t for t in bundled_bench.split("holdout")}
    assert deterministic.judge(tasks["YES_NO"], "I think so.").reason == Reason.NO_ANSWER_LINE
    assert deterministic.judge(tasks["FREE_FORM"], "ANSWER: x").reason == Reason.FREE_FORM_NEEDS_LLM_JUDGE


def test_no_status_literal_comparisons_left_in_the_package():
    """A status is written ``Status.X``: ``status == "failed"``, ``status="error"`` or ``("passed", "failed")``
    in a module would bring back the scattered spellings this replaced."""
    pattern = re.compile(r'status\W{0,4}(?:==|!=|=|in)\s*\(?"(?:passed|failed|unscored|error)"'
                         r'|\("passed", "failed"\)')
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        found += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
