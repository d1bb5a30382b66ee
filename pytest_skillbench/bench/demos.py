"""Demonstrations: chat rows ``{"messages": [system, user, assistant], "metadata": {...}}``.

They are the offline default training corpus; the loader checks the shape line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SkillbenchError
from ..jsonl import parse_line, read_lines

ROLES = ("system", "user", "assistant")


def chat_messages(row, path: Path, line: int, what: str) -> list[dict]:
    """A chat row's ``messages`` list, each with a known role and string content, or one error naming the
    file, line and field (``what``: "a demo row", "a chat row")."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise SkillbenchError(f"{what} needs a messages list", path=path, line=line, field="messages")
    for i, m in enumerate(row["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise SkillbenchError("each message needs a role (system/user/assistant) and string content",
                                  path=path, line=line, field=f"messages[{i}]")
    return row["messages"]


@dataclass(frozen=True)
class Demo:
    messages: tuple[dict, ...]
    task_uid: str
    skill: str
    condition: str
    line: int


def load_demos(path: str | Path, catalog=None, errors: list | None = None) -> list[Demo]:
    path = Path(path)
    lines = read_lines(path, "demos")
    out = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = parse_line(raw, path, n)
            msgs = chat_messages(row, path, n, "a demo row")
            if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
                raise SkillbenchError("no assistant message with content", path=path, line=n, field="messages")
            meta = row.get("metadata") or {}
            if not isinstance(meta, dict):
                raise SkillbenchError("must be an object", path=path, line=n, field="metadata")
            cond = meta.get("condition", "")
            if cond and cond not in ("baseline", "curated"):
                raise SkillbenchError(f"unknown condition {cond!r}", path=path, line=n, field="metadata.condition")
            skill = meta.get("skill", "")
            if catalog is not None and skill and skill not in catalog:
                raise SkillbenchError(f"unknown skill {skill!r}", path=path, line=n, field="metadata.skill")
            out.append(Demo(tuple(msgs), str(meta.get("task_uid", "")), str(skill), str(cond), n))
        except SkillbenchError as err:
            if errors is None:
                raise
            errors.append(err)
    return out
