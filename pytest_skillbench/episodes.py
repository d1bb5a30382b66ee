"""Episodes and verdicts: the records everything downstream is computed from.

An ``Episode`` is one (student, condition, task) with its response; a ``Verdict`` is a judge's reading of
it. ``status`` is one of passed | failed | unscored | error. Only passed/failed are *scored*: statistics
never count ``unscored`` (no parseable answer, judge output unparseable) or ``error`` (infrastructure)
as failures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Final

from .errors import SkillbenchError
from .jsonl import read_lines


class Status:
    """The four verdict statuses, as plain ``str`` constants rather than an ``Enum``: a status travels
    through JSON, YAML, xdist's execnet channel and ``repr`` in messages, and a str subclass would change
    (or break) each of those, so ``Status.PASSED`` *is* the string ``"passed"``."""

    PASSED: Final = "passed"
    FAILED: Final = "failed"
    UNSCORED: Final = "unscored"  # no parseable answer, or judge output unreadable: never counted
    ERROR: Final = "error"  # infrastructure (generation or judge call failed): never counted


STATUSES = (Status.PASSED, Status.FAILED, Status.UNSCORED, Status.ERROR)
SCORED = (Status.PASSED, Status.FAILED)


class Reason:
    """Verdict ``reason`` values that more than one module writes or compares (one spelling, one place).
    Other reasons are free text of a single module (e.g. ``probe_<kind>``, ``judge_error`` on import)."""

    NO_ANSWER_LINE: Final = "no_answer_line"
    ANSWER_NOT_IN_EXPECTED_FORM: Final = "answer_not_in_expected_form"
    FREE_FORM_NEEDS_LLM_JUDGE: Final = "free_form_needs_llm_judge"
    GENERATION_ERROR: Final = "generation_error"
    JUDGE_PARSE_FAILURE: Final = "judge_parse_failure"
    JUDGE_UNAVAILABLE: Final = "judge_unavailable"
    JUDGE_REQUEST_REJECTED: Final = "judge_request_rejected"
    JUDGE_HOOK_INVALID: Final = "judge_hook_invalid"
    WORKER_CRASHED: Final = "worker_crashed"
    MISSING_VERDICT: Final = "missing verdict"


# format misses: the answer may be right but is not on a parseable ANSWER line (answer forcing, the report)
FORMAT_REASONS = (Reason.NO_ANSWER_LINE, Reason.ANSWER_NOT_IN_EXPECTED_FORM)


@dataclass
class Verdict:
    status: str
    expected: str = ""
    extracted: str | None = None
    judge: str = "deterministic"
    rationale: str = ""
    format_ok: bool = False
    reason: str = ""
    score: float | None = None
    detail: dict = field(default_factory=dict)  # judge-specific extras (criteria counts, ...)
    # answer forcing (forcing.py): "strict" (the ANSWER-line reading) or "forced"; extra holds the forced
    # reading ("forced") and, for a forced primary verdict, the strict verdict it stands in for ("strict").
    # Both are left out of to_dict() at their defaults, so strict-only runs store what they always stored.
    scoring: str = "strict"
    extra: dict = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.status in SCORED

    def to_dict(self) -> dict:
        d = {f: _plain(getattr(self, f)) for f in _VERDICT_FIELDS}
        if d["scoring"] == "strict":
            del d["scoring"]
        if not d["extra"]:
            del d["extra"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class Episode:
    student: str
    condition: str
    task_uid: str
    skill: str
    query_type: str
    response: str | None
    verdict: Verdict
    category: str = ""
    nodeid: str = ""
    gen_tokens: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready copy (nested dicts and lists copied, so the caller may change it freely); what
        ``dataclasses.asdict`` returns, without its per-value dataclass checks (3 calls per item)."""
        return {f: self.verdict.to_dict() if f == "verdict" else _plain(getattr(self, f)) for f in _EPISODE_FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> Episode:
        d = dict(d)
        missing = {"status": Status.ERROR, "reason": Reason.MISSING_VERDICT}
        d["verdict"] = Verdict.from_dict(d.get("verdict") or missing)
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


_VERDICT_FIELDS = tuple(Verdict.__dataclass_fields__)
_EPISODE_FIELDS = tuple(Episode.__dataclass_fields__)


def write_episodes(path: str | Path, episodes: list[Episode]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n" for ep in episodes)


def read_episodes(path: str | Path) -> list[Episode]:
    path = Path(path)
    out = []
    for n, line in enumerate(read_lines(path, "episodes"), 1):
        if not line.strip():
            continue
        try:
            out.append(Episode.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise SkillbenchError(f"malformed episode: {exc}", path=path, line=n) from None
    return out
