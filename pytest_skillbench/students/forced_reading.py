"""The model side of answer forcing (``forcing.py``): what a student's row reads after its response and how
the forced answer is read off the model's tokens and log-probabilities.

Kept with the students so the hf backend needs nothing from the judging side of forcing.
"""

from __future__ import annotations

import math

GREEDY_MAX_TOKENS = 16
ANSWER_SUFFIX = "\nANSWER:"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def suffix_for(response: str) -> str:
    """What is appended to the response before the answer is read: an open ``<think>`` block is closed first."""
    last_open = response.rfind(THINK_OPEN)
    if last_open >= 0 and response.find(THINK_CLOSE, last_open) < 0:
        return "\n" + THINK_CLOSE + ANSWER_SUFFIX
    return ANSWER_SUFFIX


def option_variants(option: str) -> list[str]:
    """Case and leading-space variants of an option whose first tokens are pooled."""
    cased = dict.fromkeys([option, option.lower(), option.upper(), option[:1].upper() + option[1:].lower()])
    return [p + c for c in cased for p in ("", " ")]


def option_token_groups(tokenizer, options: tuple[str, ...]) -> list[list[int]]:
    """For each option, the distinct first-token ids of its variants; an id that starts variants of two
    options is ambiguous and dropped from both. An option left with no id makes the group list empty (the
    caller falls back to greedy forcing)."""
    firsts = []
    for opt in options:
        ids = []
        for v in option_variants(opt):
            enc = tokenizer.encode(v, add_special_tokens=False)
            if enc and enc[0] not in ids:
                ids.append(enc[0])
        firsts.append(ids)
    counts: dict[int, int] = {}
    for ids in firsts:
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
    groups = [[i for i in ids if counts[i] == 1] for ids in firsts]
    return groups if all(groups) else []


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def options_result(options: tuple[str, ...], token_logprobs: list[list[float]]) -> dict:
    """The forced answer from each option's first-token log-probs: pooled, the larger wins, with the margin."""
    pooled = [logsumexp(lps) for lps in token_logprobs]
    order = sorted(range(len(options)), key=lambda i: -pooled[i])
    margin = pooled[order[0]] - pooled[order[1]] if len(order) > 1 else None
    return {"method": "options", "answer": options[order[0]],
            "logprobs": {o: lp for o, lp in zip(options, pooled)}, "margin": margin}


def greedy_result(text: str) -> dict:
    """The forced answer of a greedy continuation: its first non-empty line."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return {"method": "greedy", "answer": first, "logprobs": None, "margin": None}
