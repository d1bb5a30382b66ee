"""Answer forcing: an offline second reading of a response that has no usable ``ANSWER:`` line.

Small students often reason in prose and never write the ANSWER line the strict (deterministic) judge reads,
so offline a run scores nothing. Two standard remedies, both computed here *beside* the strict verdict, never
instead of it:

* **option log-likelihoods** (as lm-evaluation-harness scores small models): the model continues its own
  sequence -- rendered prompt + its response (an open ``<think>`` block closed first) + ``"\\nANSWER:"`` --
  and the log-probabilities of each option's first token (case and leading-space variants pooled by
  log-sum-exp) are compared; the forced answer is the larger. Used for YES_NO and for RANKING questions that
  name option labels;
* **answer-forcing greedy decode** (as zero-shot chain-of-thought answer extraction): the same continuation,
  then at most ``GREEDY_MAX_TOKENS`` greedy tokens; the first non-empty line is the answer (an end token is
  not chosen before the answer has some text: a forced answer cannot be empty). Used for SINGLE_WORD and
  ordered-list RANKING. FREE_FORM is never forced (it needs an LLM judge).

The forced answer is judged by the same deterministic rules. The **primary** verdict (what pytest passes or
fails and what the statistics use) is the strict verdict when it is scored, else the forced one; the strict
verdict stays visible in ``Verdict.extra["strict"]`` and the forced reading in ``Verdict.extra["forced"]``.
The forced answer is computed for every non-FREE_FORM episode, also where the strict verdict is scored: the
agreement of the two there (``forced_vs_strict_agreement``) is the method's built-in validity check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .bench.tasks import Task
from .episodes import FORMAT_REASONS, SCORED, Episode, Status, Verdict
from .judges import deterministic
from .students.forced_reading import (  # noqa: F401  (the model side of forcing; re-exported)
    ANSWER_SUFFIX,
    GREEDY_MAX_TOKENS,
    THINK_CLOSE,
    THINK_OPEN,
    greedy_result,
    logsumexp,
    option_token_groups,
    option_variants,
    options_result,
    suffix_for,
)

FORCING_VERSION = "force-v3"  # v3: a greedy answer cannot end (end token, line break) before it has text  # part of the forcing cache key
FORCE_REASONS = FORMAT_REASONS  # a format miss is what forcing can rescue
MODES = ("auto", "on", "off")
SCORING = ("primary", "strict")

# Option labels a question can name (the deterministic judge reads the same shapes: "A", "(A)", "Option A",
# "Argument A", "E2", "Alpha").
_LABEL_PATTERNS = (
    re.compile(r"\(([A-Za-z][A-Za-z0-9]{0,5})\)"),
    re.compile(r"\b(?:[Oo]ption|[Aa]rgument|[Pp]lan|[Cc]andidate|[Pp]roposal|[Rr]oute|[Ss]ite|[Pp]olicy|"
               r"[Cc]hoice|[Ee]xplanation|[Hh]ypothesis|[Ss]tatement|[Ss]trategy|[Dd]esign|[Rr]eport|[Tt]eam|"
               r"[Pp]rocedure|[Mm]odel|[Ss]cenario|[Cc]laim|[Ss]ample|[Ss]tudy|[Bb]ox|[Rr]oom|[Dd]oor)\s+"
               r"([A-Z][A-Za-z0-9]{0,5}|[0-9]{1,2})\b"),
    re.compile(r"(?m)^\s*([A-H])[).:]\s"),
    re.compile(r"(?:^|[\s;,])([A-H])\)\s"),
)


@dataclass(frozen=True)
class ForceTarget:
    """How one task's answer is forced: ``options`` (score the labels' first tokens) or ``greedy``."""

    method: str
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"method": self.method, "options": list(self.options)}


def option_labels(task: Task) -> tuple[str, ...]:
    """The option labels a RANKING question names, when its gold is one of them (else ``()``).

    A bench v2 task lists them in ``options``; for other benches (the reference study's holdout) they are read
    from the question and passage with the label shapes the deterministic judge accepts."""
    gold = task.answer.strip()
    if "," in gold:
        return ()
    declared = tuple(getattr(task, "options", None) or ())
    if declared:
        return declared if gold in declared else ()
    found: list[str] = []
    for text in (task.question, task.passage):
        for pat in _LABEL_PATTERNS:
            for m in pat.finditer(text):
                if m.group(1) not in found:
                    found.append(m.group(1))
    return tuple(found) if gold in found and len(found) >= 2 else ()


def target_for(task: Task) -> ForceTarget | None:
    """The forcing method for a task; None for FREE_FORM (never forced)."""
    if task.query_type == "YES_NO":
        return ForceTarget("options", ("yes", "no"))
    if task.query_type == "RANKING":
        labels = option_labels(task)
        return ForceTarget("options", labels) if labels else ForceTarget("greedy")
    if task.query_type == "SINGLE_WORD":
        return ForceTarget("greedy")
    return None


def needs_forcing(strict: Verdict, truncated: bool) -> bool:
    """An episode is forced when its strict verdict has no usable answer, or its response was cut off."""
    return (strict.status == Status.UNSCORED and strict.reason in FORCE_REASONS) or truncated


def forced_verdict(task: Task, forced: dict) -> Verdict:
    """The forced answer judged by the deterministic rules."""
    return deterministic.judge(task, "ANSWER: " + (forced.get("answer") or ""))


def combine(task: Task, strict: Verdict, forced: dict | None, *, truncated: bool = False) -> Verdict:
    """The primary verdict: the strict verdict when it is scored, else the forced one (when there is one).
    The strict verdict is never overridden; the forced reading is kept beside it either way."""
    if forced is None or task.query_type == "FREE_FORM":
        return strict
    fv = forced_verdict(task, forced)
    info = {**forced, "status": fv.status, "extracted": fv.extracted, "truncated": truncated}
    if strict.scored or not needs_forcing(strict, truncated) or not fv.scored:
        out = Verdict.from_dict(strict.to_dict())
        out.extra = {**strict.extra, "forced": info}
        return out
    return Verdict(status=fv.status, expected=strict.expected, extracted=fv.extracted, judge=strict.judge,
                   rationale=f"forced answer ({forced['method']}): {fv.rationale}; strict: {strict.rationale}",
                   format_ok=strict.format_ok, reason=strict.reason, scoring="forced",
                   extra={"forced": info, "strict": strict.to_dict()})


def strict_of(v: Verdict) -> Verdict:
    """The strict verdict behind a (possibly forced) primary verdict."""
    if v.scoring == "forced" and isinstance(v.extra.get("strict"), dict):
        return Verdict.from_dict(v.extra["strict"])
    return v


def strict_episodes(eps: list[Episode]) -> list[Episode]:
    """The episodes as the strict (ANSWER-line) judge alone scored them."""
    out = []
    for e in eps:
        strict = strict_of(e.verdict)
        out.append(e if strict is e.verdict else Episode(**{**e.__dict__, "verdict": strict}))
    return out


def forced_of(v: Verdict) -> dict | None:
    f = v.extra.get("forced") if isinstance(v.extra, dict) else None
    return f if isinstance(f, dict) else None


def has_forcing(episodes) -> bool:
    """True when any episode carries a forced reading (the report then shows the strict/forced columns)."""
    return any(e.verdict.scoring == "forced" or forced_of(e.verdict) is not None for e in episodes)


def same_answer(a: Verdict, b: dict) -> bool:
    """A strict verdict and a forced reading give the same answer (both right, or the same wrong answer)."""
    if a.status != b.get("status"):
        return False
    return a.status == Status.PASSED or deterministic.normalise(a.extracted or "") == deterministic.normalise(b.get("extracted") or "")


AGREEMENT_NOTE_BELOW = 0.8  # the terminal warns when the forced reading agrees less often than this ...
AGREEMENT_NOTE_MIN_N = 20  # ... over at least this many episodes


def agreement(episodes) -> dict:
    """``forced_vs_strict_agreement``: on episodes with a scored strict answer and a scored forced reading, the
    share where the two give the same answer -- how far the forced reading can be trusted where it stands in --
    overall and ``by_method`` (``options`` / ``greedy``)."""
    pairs: list[tuple[str, bool]] = []
    for e in episodes:
        strict, forced = strict_of(e.verdict), forced_of(e.verdict)
        if forced is not None and strict.scored and forced.get("status") in SCORED:
            pairs.append((str(forced.get("method") or "unknown"), same_answer(strict, forced)))

    def share(flags: list[bool]) -> dict:
        return {"share": sum(flags) / len(flags) if flags else None, "n": len(flags)}

    methods = sorted({m for m, _ in pairs})
    return {**share([s for _, s in pairs]),
            "by_method": {m: share([s for mm, s in pairs if mm == m]) for m in methods}}


def agreement_is_low(ag: dict | None) -> bool:
    """Whether a student's ``forced_vs_strict_agreement`` is low enough, on enough episodes, to warn about."""
    return bool(ag) and ag.get("share") is not None and ag.get("n", 0) >= AGREEMENT_NOTE_MIN_N \
        and ag["share"] < AGREEMENT_NOTE_BELOW
