"""Bench tasks: the typed ``Task``, the JSONL loader with line-precise errors, and the ``Bench``.

A task file is JSON Lines, one task per line. Every defect is reported as one ``SkillbenchError`` naming
the file, the line and the field. ``load_tasks(..., errors=list)`` collects every defect instead of
stopping at the first (``skillbench validate`` uses that).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SkillbenchError
from .catalog import Catalog

QUERY_TYPES = ("YES_NO", "SINGLE_WORD", "RANKING", "FREE_FORM")
DIFFICULTIES = ("intermediate", "advanced")
TASK_FIELDS = ("task_uid", "skill", "query_type", "title", "passage", "question", "answer",
               "must_identify", "difficulty", "domain")
UID_RE = re.compile(r"^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$")
# A RANKING gold is an option label ("A", "E2", "Alpha") or an ordered comma-separated list of short names.
_RANK_ITEM_RE = re.compile(r"^[\w][\w.'\-]*(?: [\w][\w.'\-]*){0,2}$")


@dataclass(frozen=True)
class Task:
    task_uid: str
    skill: str
    query_type: str
    title: str
    passage: str
    question: str
    answer: str
    must_identify: tuple[str, ...]
    difficulty: str = "intermediate"
    domain: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["must_identify"] = list(self.must_identify)
        return d


def compute_task_uid(skill: str, query_type: str, passage: str, question: str, answer: str) -> str:
    """A stable id from the content: the same task text always gets the same uid."""
    digest = hashlib.sha256("\x1f".join([skill, query_type, passage, question, answer]).encode()).hexdigest()
    return "-".join(digest[i:i + 4] for i in range(0, 16, 4))


def ranking_gold_ok(answer: str) -> bool:
    items = [a.strip() for a in answer.split(",")]
    return bool(items) and all(_RANK_ITEM_RE.match(i) for i in items)


def task_from_dict(data: object, *, path: Path | str, line: int | None, catalog: Catalog | None) -> Task:
    if not isinstance(data, dict):
        raise SkillbenchError("each line must be one JSON object", path=path, line=line)
    unknown = sorted(set(data) - set(TASK_FIELDS))
    if unknown:
        raise SkillbenchError("unknown field", path=path, line=line, field=unknown[0])
    for key in TASK_FIELDS:
        if key not in data:
            raise SkillbenchError("missing field", path=path, line=line, field=key)
    for key in TASK_FIELDS:
        if key == "must_identify":
            continue
        if not isinstance(data[key], str) or (key not in ("domain",) and not data[key].strip()):
            raise SkillbenchError("must be a non-empty string", path=path, line=line, field=key)
    uid = data["task_uid"]
    if not UID_RE.match(uid):
        raise SkillbenchError(f"task_uid {uid!r} is not shaped xxxx-xxxx-xxxx-xxxx (lowercase hex)",
                              path=path, line=line, field="task_uid")
    qt = data["query_type"]
    if qt not in QUERY_TYPES:
        raise SkillbenchError(f"unknown query type {qt!r} (one of {', '.join(QUERY_TYPES)})",
                              path=path, line=line, field="query_type")
    if catalog is not None and data["skill"] not in catalog:
        raise SkillbenchError(f"unknown skill {data['skill']!r} (not in the catalog)", path=path, line=line,
                              field="skill")
    answer = data["answer"].strip()
    if qt == "YES_NO" and answer.lower() not in ("yes", "no"):
        raise SkillbenchError(f"a YES_NO gold must be yes or no, got {answer!r}", path=path, line=line,
                              field="answer")
    if qt == "RANKING" and not ranking_gold_ok(answer):
        raise SkillbenchError(f"RANKING gold {answer!r} is neither an option label nor a comma-separated "
                              "list of short names", path=path, line=line, field="answer")
    mi = data["must_identify"]
    if not isinstance(mi, list) or not all(isinstance(m, str) and m.strip() for m in mi):
        raise SkillbenchError("must be a list of non-empty strings", path=path, line=line, field="must_identify")
    if data["difficulty"] not in DIFFICULTIES:
        raise SkillbenchError(f"unknown difficulty {data['difficulty']!r} (one of {', '.join(DIFFICULTIES)})",
                              path=path, line=line, field="difficulty")
    return Task(task_uid=uid, skill=data["skill"], query_type=qt, title=data["title"], passage=data["passage"],
                question=data["question"], answer=answer, must_identify=tuple(mi),
                difficulty=data["difficulty"], domain=data["domain"])


def load_tasks(path: str | Path, catalog: Catalog | None = None,
               errors: list[SkillbenchError] | None = None) -> list[Task]:
    """Load a JSONL task file. With ``errors`` given, defects are collected there instead of raised."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SkillbenchError(f"cannot read task file: {exc.strerror}", path=path) from None
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SkillbenchError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, line=n) from None
            task = task_from_dict(data, path=path, line=n, catalog=catalog)
            if task.task_uid in seen:
                raise SkillbenchError(f"duplicate task_uid {task.task_uid} (first on line {seen[task.task_uid]})",
                                      path=path, line=n, field="task_uid")
            seen[task.task_uid] = n
            tasks.append(task)
        except SkillbenchError as err:
            if errors is None:
                raise
            errors.append(err)
    if not tasks and not lines and errors is None:
        raise SkillbenchError("task file is empty", path=path)
    return tasks


def write_tasks(path: str | Path, tasks: list[Task]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for t in tasks:
            fh.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")


@dataclass
class Bench:
    """Tasks by split, plus where they came from (for the manifest and item ids)."""

    splits: dict[str, list[Task]]
    source: str
    catalog: Catalog

    def split(self, name: str) -> list[Task]:
        if name not in self.splits:
            raise SkillbenchError(f"bench {self.source} has no split {name!r} (has: {', '.join(sorted(self.splits))})")
        return self.splits[name]

    def content_hash(self, split: str | None = None) -> str:
        h = hashlib.sha256()
        for name in sorted(self.splits) if split is None else [split]:
            for t in self.splits[name]:
                h.update(json.dumps(t.to_dict(), sort_keys=True).encode())
        return h.hexdigest()[:16]


def check_disjoint(splits: dict[str, list[Task]], errors: list[SkillbenchError] | None, source: str) -> None:
    """A task (same uid or same passage+question) in two splits is a leak between train and holdout."""
    seen: dict[str, str] = {}
    for name in sorted(splits):
        for t in splits[name]:
            for key in (t.task_uid, hashlib.sha256((t.passage + "\x1f" + t.question).encode()).hexdigest()):
                other = seen.get(key)
                if other and other != name:
                    err = SkillbenchError(f"task {t.task_uid} appears in both {other} and {name}",
                                          path=source, field="task_uid")
                    if errors is None:
                        raise err
                    errors.append(err)
                    break
                seen[key] = name
