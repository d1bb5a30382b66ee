"""Drift metrics: how a student's *behaviour* moves, beside whether its answers are right.

Per episode (``episode_metrics``; stored in ``Episode.extra["drift"]`` by the session, recomputed from the
response for episodes that lack it):

* ``tokens``: output length in tokens: the generated token count when the backend reports it
  (``tokens_source: generated``), else a tokenizer-free estimate (words and punctuation marks,
  ``tokens_source: approx``);
* ``asks_json`` / ``json_valid``: when the prompt asks for JSON (the word "JSON" in the task's question or
  the probe prompt), whether the response holds one parseable JSON value (a fenced ```json block, the whole
  answer, or the span from the first ``{``/``[`` to the last ``}``/``]``; think blocks are ignored);
* ``slop_hits`` / ``slop_phrases``: phrases from ``pytest_skillbench/data/slop_phrases.txt`` ("As an AI",
  "I apologize", "I hope this helps", ...), matched case-insensitively on word boundaries;
* ``repeated_ngram_rate``: the share of word 4-grams that repeat an earlier 4-gram of the same response
  (0 for a response with no repetition, near 1 for a loop);
* ``think_closes`` / ``think_loop``: the number of ``</think>`` tags, and whether there is more than one
  (the repeated reasoning blocks seen when a fine-tuned student loops);
* ``refusal``: the response declines the request ("I can't help with that", "As an AI, I cannot ...").

``drift_section`` aggregates them per student and condition (means and rates over answered episodes) and,
for each student whose base is known (``base_student`` / ``--sft-pair``, or ``NAME@base`` for checkpoints),
the difference student - base per condition with plain-words flags for large moves.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from ..lineage import base_map

DATA = Path(__file__).resolve().parents[1] / "data"
SLOP_FILE = DATA / "slop_phrases.txt"
NGRAM = 4

_WORD = re.compile(r"[a-z0-9']+")
_TOKENISH = re.compile(r"\w+|[^\w\s]")
_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.S)
_ASKS_JSON = re.compile(r"\bjson\b", re.I)
_REFUSAL = [re.compile(p, re.I) for p in (
    r"\bI(?:'m| am)\s+(?:sorry|afraid),?\s+(?:but\s+)?I\s+(?:can(?:no|')t|cannot|am\s+(?:not\s+able|unable)|won't)\b",
    r"\bI\s+(?:can(?:no|')t|cannot|won't|will\s+not|am\s+(?:not\s+able|unable)\s+to)\s+(?:help|assist|comply|"
    r"fulfil+|do\s+that|provide\s+(?:that|this|an?\s+answer)|answer\s+(?:that|this)|engage|support\s+that)",
    r"\bas\s+an\s+ai\b[^.\n]{0,60}\b(?:cannot|can't|unable|not\s+able|don't\s+have)\b",
    r"\bI\s+must\s+(?:decline|refuse)\b",
    r"\bI(?:'m| am)\s+not\s+(?:able|allowed|permitted)\s+to\s+(?:help|assist|answer|provide)\b",
)]
# the same patterns as one scan; every one starts with "I" or "as", so positions starting otherwise are skipped
_REFUSAL_ANY = re.compile(r"(?=[iIaA])(?:" + "|".join(f"(?:{p.pattern})" for p in _REFUSAL) + ")", re.I)


# -- the phrase list ----------------------------------------------------------------------------------
def _norm_quotes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


@lru_cache(maxsize=8)
def load_slop_phrases(path: str | None = None) -> tuple[str, ...]:
    lines = Path(path or SLOP_FILE).read_text(encoding="utf-8").splitlines()
    return tuple(_norm_quotes(line.strip().lower()) for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=8)
def _slop_re(path: str | None = None) -> re.Pattern:
    phrases = sorted(load_slop_phrases(path), key=len, reverse=True)
    if not phrases:
        return re.compile(r"(?!)")  # an empty list matches nothing
    # the leading class of first characters lets the regex engine skip positions no phrase can start at
    # (5x faster on long responses; the matches are the same)
    firsts = "".join(sorted({c for p in phrases if p for c in (p[0].lower(), p[0].upper())}))
    return re.compile(r"(?=[" + re.escape(firsts) + r"])(?<![\w'])(?:" + "|".join(re.escape(p) for p in phrases)
                      + r")(?![\w'])", re.I)


def slop_list_hash(path: str | None = None) -> str:
    return hashlib.sha256("\n".join(load_slop_phrases(path)).encode()).hexdigest()[:16]


# -- per-episode metrics ------------------------------------------------------------------------------
def approx_tokens(text: str) -> int:
    return len(_TOKENISH.findall(text or ""))


def asks_for_json(prompt: str | None) -> bool:
    return bool(prompt and _ASKS_JSON.search(prompt))


def json_valid(text: str | None) -> bool:
    """Whether the response holds one parseable JSON object or array (think blocks ignored)."""
    if not text:
        return False
    body = _THINK_BLOCK.sub("", text)
    if _THINK_CLOSE.search(body):
        body = body[list(_THINK_CLOSE.finditer(body))[-1].end():]
    candidates = [m.group(1) for m in _FENCE.finditer(body)] + [body.strip()]
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = max(body.rfind("}"), body.rfind("]"))
        if end > start:
            candidates.append(body[start:end + 1])
    for c in candidates:
        try:
            value = json.loads(c.strip())
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, (dict, list)):
            return True
    return False


def slop_hits(text: str | None, path: str | None = None) -> list[str]:
    if not text:
        return []
    return [m.group(0).lower() for m in _slop_re(path).finditer(_norm_quotes(text))]


def repeated_ngram_rate(text: str | None, n: int = NGRAM) -> float:
    words = _WORD.findall(_norm_quotes(text or "").lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def is_refusal(text: str | None) -> bool:
    if not text:
        return False
    return _REFUSAL_ANY.search(_norm_quotes(text)) is not None


def episode_metrics(text: str | None, gen_tokens: int | None = None, *, asks_json: bool | None = None) -> dict:
    """The drift metrics of one response (see the module docstring)."""
    if text is None:
        return {"answered": False}
    hits = slop_hits(text)
    closes = len(_THINK_CLOSE.findall(text))
    out = {"answered": True,
           "tokens": int(gen_tokens) if gen_tokens is not None else approx_tokens(text),
           "tokens_source": "generated" if gen_tokens is not None else "approx",
           "asks_json": asks_json, "json_valid": json_valid(text) if asks_json else None,
           "slop_hits": len(hits), "slop_phrases": sorted(set(hits))[:5],
           "repeated_ngram_rate": round(repeated_ngram_rate(text), 4),
           "think_closes": closes, "think_loop": closes > 1, "refusal": is_refusal(text)}
    return out


def metrics_of(ep) -> dict:
    """An episode's stored drift metrics, or computed from its response."""
    stored = (ep.extra or {}).get("drift")
    if isinstance(stored, dict) and "answered" in stored:
        return stored
    return episode_metrics(ep.response, ep.gen_tokens, asks_json=None)


# -- aggregation --------------------------------------------------------------------------------------
RATE_KEYS = ("json_valid_rate", "slop_rate", "slop_per_1k_tokens", "repeated_ngram_rate", "think_loop_rate",
             "refusal_rate")


def aggregate(eps) -> dict:
    ms = [metrics_of(e) for e in eps]
    ans = [m for m in ms if m.get("answered")]
    n = len(ans)
    out: dict = {"n": len(ms), "answered": n}
    if not n:
        return out
    toks = [m["tokens"] for m in ans]
    sources = {m["tokens_source"] for m in ans}
    asked = [m for m in ans if m.get("asks_json")]
    total_tokens = sum(toks)
    out.update({
        "mean_tokens": sum(toks) / n, "median_tokens": float(statistics.median(toks)),
        "tokens_source": sources.pop() if len(sources) == 1 else "mixed",
        "json_asked": len(asked),
        "json_valid_rate": (sum(bool(m["json_valid"]) for m in asked) / len(asked)) if asked else None,
        "slop_rate": sum(m["slop_hits"] > 0 for m in ans) / n,
        "slop_per_1k_tokens": 1000 * sum(m["slop_hits"] for m in ans) / total_tokens if total_tokens else 0.0,
        "repeated_ngram_rate": sum(m["repeated_ngram_rate"] for m in ans) / n,
        "think_loop_rate": sum(bool(m["think_loop"]) for m in ans) / n,
        "refusal_rate": sum(bool(m["refusal"]) for m in ans) / n,
    })
    return out


# thresholds for the plain-words flags on drift against the base
FLAG_LENGTH_RATIO = 1.5
FLAG_RATE_PTS = 0.05
FLAG_REPEAT = 0.10


def _flags(d: dict, cond: str) -> list[str]:
    out = []
    ratio = d.get("length_ratio")
    if ratio is not None and (ratio >= FLAG_LENGTH_RATIO or ratio <= 1 / FLAG_LENGTH_RATIO):
        out.append(f"{cond}: responses {ratio:.2f}x the base's length")
    for key, label in (("refusal_rate", "refusals"), ("slop_rate", "slop phrases"),
                       ("think_loop_rate", "repeated </think> blocks")):
        v = d.get(key)
        if v is not None and v >= FLAG_RATE_PTS:
            out.append(f"{cond}: {label} up {100 * v:.1f} pts over the base")
    v = d.get("json_valid_rate")
    if v is not None and v <= -FLAG_RATE_PTS:
        out.append(f"{cond}: valid JSON down {100 * -v:.1f} pts from the base")
    v = d.get("repeated_ngram_rate")
    if v is not None and v >= FLAG_REPEAT:
        out.append(f"{cond}: repeated 4-gram share up {100 * v:.1f} pts over the base")
    return out


def drift_against(student: dict, base: dict) -> dict:
    """student - base per condition for every shared condition; length as a ratio and a difference."""
    out: dict = {}
    flags: list[str] = []
    for cond, s in student.items():
        b = base.get(cond)
        if not b or not s.get("answered") or not b.get("answered"):
            continue
        d = {"mean_tokens": s["mean_tokens"] - b["mean_tokens"],
             "length_ratio": s["mean_tokens"] / b["mean_tokens"] if b["mean_tokens"] else None}
        for key in RATE_KEYS:
            d[key] = None if s.get(key) is None or b.get(key) is None else s[key] - b[key]
        out[cond] = d
        flags += _flags(d, cond)
    return {"conditions": out, "flags": flags}


def drift_section(episodes, run: dict | None = None) -> dict:
    """``{"students": {name: {condition: aggregate}}, "against_base": {name: {...}}, "slop_list"}``."""
    by: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for e in episodes:
        by[e.student][e.condition].append(e)
    students = {name: {cond: aggregate(eps) for cond, eps in sorted(conds.items())} for name, conds in by.items()}
    against = {}
    for name, base in base_map(list(students), run or {}).items():
        entry = drift_against(students[name], students[base])
        entry["base"] = base
        against[name] = entry
    return {"students": students, "against_base": against,
            "slop_list": {"file": SLOP_FILE.name, "phrases": len(load_slop_phrases()), "sha256": slop_list_hash()},
            "ngram": NGRAM}
