"""Diagnostics the reference study needed: the thinking policy and the phantom skill block.

Thinking policy (``--thinking keep|strip|disable``, or ``thinking`` in a registry entry), applied to a
response *before judging* (the stored response is never altered; what was removed is recorded on the
episode):

* ``keep``: the response is judged as generated;
* ``strip``: every ``<think>...</think>`` block is removed; a ``</think>`` with no opening tag (templates
  that open the block in the prompt) removes everything before it; an unclosed ``<think>`` removes the
  rest of the response (a truncated chain of thought holds no final answer);
* ``disable``: the chat template is asked not to think (``enable_thinking=False``); any (usually empty)
  think block that still appears is stripped as above.

Phantom skill block: a *baseline* response (no SKILL block was shown) that mentions a SKILL block, a
skill's procedure, or reproduces a procedure step of the task's skill word for word. Its share among
answered baseline responses measures how much a fine-tuned student recites a block it was never shown.
"""

from __future__ import annotations

import re

THINKING_POLICIES = ("keep", "strip", "disable")

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)


def apply_thinking(text: str | None, policy: str | None) -> tuple[str | None, int]:
    """The text the judge sees under ``policy``, and how many characters were removed."""
    if text is None or policy in (None, "", "keep"):
        return text, 0
    if policy not in THINKING_POLICIES:
        raise ValueError(f"unknown thinking policy {policy!r} (one of {', '.join(THINKING_POLICIES)})")
    out = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(out))
    if closes:  # a closing tag whose opening tag was in the prompt
        out = out[closes[-1].end():]
    m = _THINK_OPEN.search(out)
    if m:  # unclosed: the rest is unfinished thinking
        out = out[:m.start()]
    out = out.strip()
    return out, len(text) - len(out)


_PHANTOM_PATTERNS = [
    re.compile(r"-{2,}\s*(?:END\s+)?SKILL\b", re.I),
    re.compile(r"\bSKILL\b"),  # the prompt's own spelling of the block, in capitals
    re.compile(r"\bskill\s+block\b", re.I),
    re.compile(r"\bskill(?:'s)?\s+(?:procedure|steps?|instructions?)\b", re.I),
    re.compile(r"\b(?:provided|given|above|included|supplied|attached)\s+skill\b", re.I),
    re.compile(r"\b(?:following|per|according\s+to|as\s+(?:instructed|required)\s+by|applying|apply)\s+the\s+"
               r"(?:skill|procedure)\b", re.I),
    re.compile(r"\bprocedure\s+steps?\b", re.I),
    re.compile(r"\bstep\s+\d+\s+of\s+the\s+(?:skill|procedure)\b", re.I),
    re.compile(r"^\s*#+\s*procedure\b", re.I | re.M),
]
_PHANTOM_WORD = re.compile(r"skill|procedure", re.I)
_NEGATION = re.compile(r"\b(?:no|not|without|absence\s+of|lack\s+of|isn't|wasn't|there's\s+no)\b[^.\n]*$", re.I)
_ABSENT = re.compile(r"[^.\n]*\b(?:is|was|were|are)\s+(?:not|absent|missing)\b|[^.\n]*\b(?:isn't|wasn't|aren't)\b",
                     re.I)
_WORD = re.compile(r"[a-z0-9']+")
STEP_WORDS = 7  # a procedure step is "reproduced" when its first 7 words appear in order, verbatim


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def phantom_skill_mention(response: str | None, procedure: tuple[str, ...] | list[str] = ()) -> str | None:
    """What in a baseline response refers to a skill block that was never shown (None when nothing does)."""
    if not response:
        return None
    # every pattern names a skill or a procedure: a response with neither word (case-folded as the patterns
    # fold it, so also "ſkill") skips the regex scans
    for pat in _PHANTOM_PATTERNS if _PHANTOM_WORD.search(response) else ():
        for m in pat.finditer(response):
            # "no SKILL block is included, so ..." notes the absence: not a phantom
            before = response[max(0, m.start() - 40):m.start()]
            after = response[m.end():m.end() + 40]
            if _NEGATION.search(before) or _ABSENT.match(after):
                continue
            return m.group(0).strip()
    if procedure:
        body = " " + " ".join(_words(response)) + " "
        for step in procedure:
            w = _words(step)[:STEP_WORDS]
            if len(w) >= 4 and f" {' '.join(w)} " in body:
                return "procedure step: " + " ".join(w)
    return None


def phantom_rate(episodes, catalog=None) -> dict:
    """Share of answered baseline responses that mention a skill block or step never shown."""
    rows = [e for e in episodes if e.condition == "baseline" and e.response]
    hits = []
    for e in rows:
        proc = ()
        if catalog is not None and e.skill in catalog:
            proc = catalog[e.skill].procedure
        what = phantom_skill_mention(e.response, proc)
        if what:
            hits.append({"task_uid": e.task_uid, "mention": what})
    n = len(rows)
    return {"n": n, "count": len(hits), "rate": len(hits) / n if n else None, "examples": hits[:5]}
