"""Bench tasks: the typed ``Task``, the JSONL loader with line-precise errors, and the ``Bench``.

A task file is JSON Lines, one task per line. Every defect is reported as one ``SkillbenchError`` naming
the file, the line and the field. ``load_tasks(..., errors=list)`` collects every defect instead of
stopping at the first (``skillbench validate`` uses that).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SkillbenchError
from ..jsonl import parse_line, read_lines
from .catalog import Catalog

QUERY_TYPES = ("YES_NO", "SINGLE_WORD", "RANKING", "FREE_FORM")
DIFFICULTIES = ("intermediate", "advanced")
TASK_FIELDS = ("task_uid", "skill", "query_type", "title", "passage", "question", "answer",
               "must_identify", "difficulty", "domain")
# Optional keys (bench v2): left out of ``to_dict`` when absent, so v1 task dicts and hashes are unchanged.
OPTIONAL_FIELDS = ("options", "difficulty_basis")
BASIS_KEYS = ("steps", "distractors")
UID_RE = re.compile(r"^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$")
# A RANKING gold is an option label ("A", "E2", "Alpha") or an ordered comma-separated list of short names.
_RANK_ITEM_RE = re.compile(r"^[\w][\w.'\-]*(?: [\w][\w.'\-]*){0,2}$")
# Option letters named in a question ("A or B", "A, B, C or D"): the labels a choice task offers when the
# task has no ``options`` key (v1 and imported benches).
_LABEL_LIST_RE = re.compile(r"\b[A-H]\b(?:\s*(?:,\s*(?:or\s+)?|\s+or\s+|\s*/\s*)[A-H]\b)+")


@dataclass(frozen=True)
class DifficultyBasis:
    """Why a task has its difficulty: reasoning steps needed and distractor facts (see ``difficulty_by_rule``)."""

    steps: int
    distractors: int

    def to_dict(self) -> dict:
        return {"steps": self.steps, "distractors": self.distractors}


def difficulty_by_rule(basis: DifficultyBasis) -> str:
    """The bench v2 rule (docs/bench.md): advanced iff 4+ steps or 2+ distractors, else intermediate."""
    return "advanced" if basis.steps >= 4 or basis.distractors >= 2 else "intermediate"


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
    options: tuple[str, ...] | None = None
    difficulty_basis: DifficultyBasis | None = None

    def to_dict(self) -> dict:
        d = {"task_uid": self.task_uid, "skill": self.skill, "query_type": self.query_type, "title": self.title,
             "passage": self.passage, "question": self.question, "answer": self.answer,
             "must_identify": list(self.must_identify), "difficulty": self.difficulty, "domain": self.domain}
        if self.options is not None:
            d["options"] = list(self.options)
        if self.difficulty_basis is not None:
            d["difficulty_basis"] = self.difficulty_basis.to_dict()
        return d

    @property
    def ranking_kind(self) -> str | None:
        """RANKING only: ``choice`` (the gold is one option label) or ``order`` (an ordered list)."""
        if self.query_type != "RANKING":
            return None
        items = [a.strip() for a in self.answer.split(",") if a.strip()]
        if len(items) != 1:
            return "order"
        if self.options:
            return "choice" if items[0] in self.options else "order"
        return "choice"

    def option_labels(self) -> tuple[str, ...] | None:
        """The candidates a guess is drawn from: ``options``, else letters the question names (choice tasks)."""
        if self.options:
            return self.options
        if self.ranking_kind == "choice":
            for m in _LABEL_LIST_RE.finditer(self.question):
                labels = tuple(dict.fromkeys(re.findall(r"[A-H]", m.group(0))))
                if self.answer in labels:
                    return labels
        return None

    @property
    def chance_rate(self) -> float | None:
        """The pass rate of a uniform guess: 1/2 for YES_NO, 1/#options for a choice or a SINGLE_WORD with
        candidates, 1/n! for an order of n items (1/P(m, n) when n of m options are ordered); None where
        undefined (FREE_FORM, SINGLE_WORD without candidates, a choice whose labels cannot be read)."""
        if self.query_type == "YES_NO":
            return 0.5
        if self.query_type == "SINGLE_WORD":
            return 1 / len(self.options) if self.options else None
        if self.query_type != "RANKING":
            return None
        if self.ranking_kind == "order":
            n = len([a for a in self.answer.split(",") if a.strip()])
            m = max(n, len(self.options or ()))
            return 1 / math.perm(m, n)
        labels = self.option_labels()
        return 1 / len(labels) if labels else None


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
    unknown = sorted(set(data) - set(TASK_FIELDS) - set(OPTIONAL_FIELDS))
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
    options = _options(data, qt, answer, path, line)
    basis = _basis(data, path, line)
    return Task(task_uid=uid, skill=data["skill"], query_type=qt, title=data["title"], passage=data["passage"],
                question=data["question"], answer=answer, must_identify=tuple(mi),
                difficulty=data["difficulty"], domain=data["domain"], options=options, difficulty_basis=basis)


def _options(data: dict, qt: str, answer: str, path: Path | str, line: int | None) -> tuple[str, ...] | None:
    """``options``: the candidates of a task; the gold must be one of them (an order: all its items are)."""
    if "options" not in data:
        return None
    opts = data["options"]
    if not isinstance(opts, list) or not all(isinstance(o, str) and o.strip() for o in opts):
        raise SkillbenchError("must be a list of non-empty strings", path=path, line=line, field="options")
    opts = [o.strip() for o in opts]
    folded = [o.casefold() for o in opts]
    if len(set(folded)) != len(folded):
        raise SkillbenchError("options repeat an entry", path=path, line=line, field="options")
    if qt == "FREE_FORM" and opts:
        raise SkillbenchError("a FREE_FORM task has no options (use [])", path=path, line=line, field="options")
    if qt == "YES_NO" and sorted(folded) != ["no", "yes"]:
        raise SkillbenchError('a YES_NO task\'s options are ["yes", "no"]', path=path, line=line, field="options")
    if qt == "RANKING" and len(opts) < 2:
        raise SkillbenchError("a RANKING task needs at least 2 options (labels, or the items to order)",
                              path=path, line=line, field="options")
    if opts and qt in ("SINGLE_WORD", "RANKING"):
        items = [a.strip() for a in answer.split(",")] if qt == "RANKING" else [answer]
        missing = [i for i in items if i.casefold() not in folded]
        if missing:
            raise SkillbenchError(f"gold {missing[0]!r} is not one of the options", path=path, line=line,
                                  field="options")
        if len({i.casefold() for i in items}) != len(items):
            raise SkillbenchError("the RANKING gold names an option twice", path=path, line=line, field="answer")
    return tuple(opts)


def _basis(data: dict, path: Path | str, line: int | None) -> DifficultyBasis | None:
    """``difficulty_basis``: {"steps": int, "distractors": int}, both >= 0 (steps >= 1)."""
    if "difficulty_basis" not in data:
        return None
    b = data["difficulty_basis"]
    if not isinstance(b, dict):
        raise SkillbenchError('must be an object {"steps": N, "distractors": M}', path=path, line=line,
                              field="difficulty_basis")
    extra = sorted(set(b) - set(BASIS_KEYS))
    if extra:
        raise SkillbenchError("unknown key", path=path, line=line, field=f"difficulty_basis.{extra[0]}")
    for key in BASIS_KEYS:
        v = b.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "steps" else 0):
            raise SkillbenchError(f"must be an integer >= {1 if key == 'steps' else 0}", path=path, line=line,
                                  field=f"difficulty_basis.{key}")
    return DifficultyBasis(steps=b["steps"], distractors=b["distractors"])


def load_tasks(path: str | Path, catalog: Catalog | None = None,
               errors: list[SkillbenchError] | None = None) -> list[Task]:
    """Load a JSONL task file. With ``errors`` given, defects are collected there instead of raised."""
    path = Path(path)
    lines = read_lines(path, "task file")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            data = parse_line(raw, path, n, column=True)
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
        fh.writelines(json.dumps(t.to_dict(), ensure_ascii=False) + "\n" for t in tasks)


@dataclass
class Bench:
    """Tasks by split, plus where they came from (for the manifest and item ids) and the bench version
    (``v2``/``v1`` for the bundled benches, ``external`` otherwise; in every manifest and cache key)."""

    splits: dict[str, list[Task]]
    source: str
    catalog: Catalog
    version: str = "external"

    @property
    def bundled(self) -> bool:
        """A bundled bench (``bundled``, ``bundled-v1``): item ids name the split file, not a path."""
        return self.version != "external"

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
