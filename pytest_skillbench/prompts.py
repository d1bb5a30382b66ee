"""The solver prompts. Versioned: ``PROMPT_VERSION`` and ``prompts_hash()`` enter every cache key."""

from __future__ import annotations

import hashlib

from .bench.catalog import Catalog
from .bench.tasks import Task

PROMPT_VERSION = "solver-v1"
CONDITIONS = ("baseline", "curated")

SOLVER_PROMPT = (
    "You are a careful reasoner solving a reading challenge about a short passage.\n"
    "Work through the problem step by step in writing before you commit to an answer.\n"
    "If a SKILL block is included below, follow its procedure in order and name each step as you apply it.\n"
    "Use only the information in the passage.\n"
    "Finish with a final line of the form `ANSWER: <conclusion>`, giving the answer in the form the "
    "challenge asks for (for example yes or no, a single word, an option label, or one sentence)."
)

USER_TEMPLATE = "Passage: {passage}\n\nChallenge: {question}"


def system_prompt(task: Task, condition: str, catalog: Catalog) -> str:
    if condition == "baseline":
        return SOLVER_PROMPT
    if condition == "curated":
        return SOLVER_PROMPT + "\n\n" + catalog[task.skill].render()
    raise ValueError(f"unknown condition {condition!r} (baseline or curated)")


def user_prompt(task: Task) -> str:
    return USER_TEMPLATE.format(passage=task.passage, question=task.question)


def messages(task: Task, condition: str, catalog: Catalog) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt(task, condition, catalog)},
            {"role": "user", "content": user_prompt(task)}]


def prompts_hash() -> str:
    return hashlib.sha256(f"{PROMPT_VERSION}\x1f{SOLVER_PROMPT}\x1f{USER_TEMPLATE}".encode()).hexdigest()[:16]
