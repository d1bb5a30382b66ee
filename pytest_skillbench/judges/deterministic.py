"""The deterministic judge: read the last ``ANSWER:`` line and compare it with the gold answer.

Normalisation (documented in README, "Deterministic judge"):

* the last line containing ``ANSWER:`` (any case, markdown emphasis around it allowed) is used;
* markdown emphasis (``*``, ``_``, backticks), surrounding quotes/brackets and trailing punctuation are stripped;
* YES_NO: the answer must be exactly ``yes`` or ``no`` (case-insensitive);
* SINGLE_WORD: case-folded, leading articles (a, an, the) dropped, hyphens/underscores read as spaces,
  whitespace collapsed, and a simple plural ``s`` dropped from words longer than three letters
  (not ``ss``), on both sides; honorifics (Mr, Mrs, Ms, Miss, Dr, Prof, with or without a dot) are
  dropped too, so "Ms. Quist" matches the gold "Quist";
* RANKING: an option label (``A``, ``Option A``, ``(A)``, ``Argument A``) or an ordered list separated by
  commas, ``>``, ``;`` or "then", compared item by item after the SINGLE_WORD normalisation (order matters);
* FREE_FORM: not scored deterministically (``unscored``, reason ``free_form_needs_llm_judge``).

No ANSWER line is a format miss: ``unscored`` with reason ``no_answer_line``, never ``failed``.
"""

from __future__ import annotations

import re

from ..bench.tasks import Task
from ..episodes import Reason, Status, Verdict

JUDGE_NAME = "deterministic"
_ANSWER_RE = re.compile(r"answer\s*[*_`]*\s*:\s*(.*)$", re.I)
_LEAD = "*_#>`- \t"
_STRIP = "*_`\"'“”‘’«»()[] \t"
_TRAIL = ".,;:!?。 \t"
_ARTICLES = ("a", "an", "the")
# Titles before a name: "Ms. Quist" names the same person as the gold "Quist" (SINGLE_WORD only).
HONORIFICS = ("mr", "mrs", "ms", "miss", "dr", "prof")
_LIST_SPLIT = re.compile(r"\s*(?:,|>|;|→|->|\bthen\b)\s*", re.I)


def extract_answer(response: str | None) -> str | None:
    """The text after the last ``ANSWER:`` marker, cleaned; None when there is no ANSWER line."""
    if not response:
        return None
    found = None
    for line in response.splitlines():
        m = _ANSWER_RE.search(line.strip().lstrip(_LEAD))
        if m and line.strip().lstrip(_LEAD)[: m.start()].strip(_STRIP) == "":
            found = m.group(1)
    if found is None:
        return None
    return clean(found)


def clean(text: str) -> str:
    prev = None
    text = text.strip()
    while prev != text:
        prev = text
        text = text.strip(_STRIP).rstrip(_TRAIL)
    return text


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def normalise(text: str) -> str:
    text = clean(text).lower().replace("-", " ").replace("_", " ")
    words = re.sub(r"[^\w\s']", " ", text).split()
    while words and words[0] in _ARTICLES and len(words) > 1:
        words = words[1:]
    # number words up to twenty read as digits ("two" matches the gold "2")
    return " ".join(_NUMBER_WORDS.get(w, _singular(w)) for w in words)


def without_honorifics(normalised: str) -> str:
    """A normalised name without its titles ("dr jane quist" -> "jane quist"); a lone title is kept."""
    words = normalised.split()
    kept = [w for w in words if w not in HONORIFICS]
    return " ".join(kept) if kept else normalised


def ranking_items(text: str) -> list[str]:
    items = [normalise(p) for p in _LIST_SPLIT.split(clean(text))]
    items = [re.sub(r"^and\s+", "", i) for i in items if i]
    return items


def _label_match(extracted: str, gold: str) -> bool:
    e, g = normalise(extracted), normalise(gold)
    if e == g:
        return True
    words = e.split()
    return len(words) == 2 and words[1] == g


def judge(task: Task, response: str | None) -> Verdict:
    expected = task.answer
    extracted = extract_answer(response)
    if task.query_type == "FREE_FORM":
        return Verdict(status=Status.UNSCORED, expected=expected, extracted=extracted, judge=JUDGE_NAME,
                       rationale="FREE_FORM answers need the LLM judge", format_ok=extracted is not None,
                       reason=Reason.FREE_FORM_NEEDS_LLM_JUDGE)
    if extracted is None:
        return Verdict(status=Status.UNSCORED, expected=expected, extracted=None, judge=JUDGE_NAME,
                       rationale="no ANSWER: line in the response (format miss)", format_ok=False,
                       reason=Reason.NO_ANSWER_LINE)
    qt = task.query_type
    if qt == "YES_NO":
        value = extracted.lower()
        if value not in ("yes", "no"):
            return Verdict(status=Status.UNSCORED, expected=expected, extracted=extracted, judge=JUDGE_NAME,
                           rationale="ANSWER line is not exactly yes or no", format_ok=False,
                           reason=Reason.ANSWER_NOT_IN_EXPECTED_FORM)
        ok = value == expected.lower()
    elif qt == "SINGLE_WORD":
        ok = without_honorifics(normalise(extracted)) == without_honorifics(normalise(expected))
    elif qt == "RANKING":
        gold_items = ranking_items(expected)
        if len(gold_items) == 1:
            ok = _label_match(extracted, expected)
        else:
            ok = ranking_items(extracted) == gold_items
    else:  # pragma: no cover - validated at load time
        raise ValueError(f"unknown query type {qt}")
    return Verdict(status=Status.PASSED if ok else Status.FAILED, expected=expected, extracted=extracted,
                   judge=JUDGE_NAME,
                   rationale="matches the gold answer" if ok else "does not match the gold answer",
                   format_ok=True)
