"""Importers for the reference study's formats (a JSON array of tasks, a JSON array of skills).

Field mapping for tasks: ``input`` -> passage, ``output`` -> answer, ``question`` -> question,
``acceptance_criteria.must_identify`` -> must_identify, ``acceptance_criteria.skill_names[0]`` -> skill.
Skills: ``example`` is "Positive: ... Why: ...\\nNegative: ... Why: ..." and is split into the two cases.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import SkillbenchError
from .catalog import CATEGORIES, Catalog, Example, Skill
from .tasks import DIFFICULTIES, QUERY_TYPES, UID_RE, Task, compute_task_uid

_CATEGORY_ALIASES = {"theory of the mind": "theory-of-mind", "theory of mind": "theory-of-mind",
                     "physical knowledge": "physical-knowledge"}
_EXAMPLE_RE = re.compile(r"Positive:\s*(?P<pc>.*?)\s*Why:\s*(?P<pw>.*?)\s*Negative:\s*(?P<nc>.*?)\s*Why:\s*(?P<nw>.*)",
                         re.S)


def load_json_array(path: Path, what: str) -> list:
    """A JSON file holding one array, or one clear error naming the file (and line for malformed JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SkillbenchError(f"malformed JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except OSError as exc:
        raise SkillbenchError(f"cannot read: {exc.strerror}", path=path) from None
    if not isinstance(data, list):
        raise SkillbenchError(f"expected a JSON array of {what}", path=path)
    return data


def is_reference_task_file(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    with open(path, encoding="utf-8") as fh:
        head = fh.read(2048).lstrip()
    return head.startswith("[")


def import_reference_tasks(path: str | Path, catalog: Catalog | None = None,
                           errors: list[SkillbenchError] | None = None) -> list[Task]:
    path = Path(path)
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, item in enumerate(load_json_array(path, "tasks")):
        where = f"[{i}]"
        try:
            if not isinstance(item, dict):
                raise SkillbenchError("each task must be a JSON object", path=path, field=where)
            for key in ("question", "input", "output", "query_type", "acceptance_criteria"):
                if key not in item:
                    raise SkillbenchError("missing field", path=path, field=f"{where}.{key}")
            ac = item["acceptance_criteria"]
            names = ac.get("skill_names") if isinstance(ac, dict) else None
            if not names or not isinstance(names, list):
                raise SkillbenchError("missing", path=path, field=f"{where}.acceptance_criteria.skill_names")
            skill = names[0]
            if catalog is not None and skill not in catalog:
                raise SkillbenchError(f"unknown skill {skill!r}", path=path,
                                      field=f"{where}.acceptance_criteria.skill_names[0]")
            qt = item["query_type"]
            if qt not in QUERY_TYPES:
                raise SkillbenchError(f"unknown query type {qt!r}", path=path, field=f"{where}.query_type")
            uid = str(item.get("task_uid") or "")
            if not UID_RE.match(uid):
                uid = compute_task_uid(skill, qt, item["input"], item["question"], str(item["output"]))
            if uid in seen:
                raise SkillbenchError(f"duplicate task_uid {uid}", path=path, field=f"{where}.task_uid")
            seen.add(uid)
            difficulty = item.get("difficulty") if item.get("difficulty") in DIFFICULTIES else "intermediate"
            tasks.append(Task(task_uid=uid, skill=skill, query_type=qt, title=str(item.get("title", "")),
                              passage=str(item["input"]), question=str(item["question"]),
                              answer=str(item["output"]).strip(),
                              must_identify=tuple(str(m) for m in ac.get("must_identify") or ()),
                              difficulty=difficulty, domain=str(item.get("domain", ""))))
        except SkillbenchError as err:
            if errors is None:
                raise
            errors.append(err)
    return tasks


def _split_example(text: str) -> tuple[Example | None, Example | None]:
    m = _EXAMPLE_RE.match(text.strip()) if text else None
    if not m:
        return (Example(case=text.strip(), why="") if text and text.strip() else None), None
    return Example(m["pc"], m["pw"]), Example(m["nc"], m["nw"])


def import_reference_skills(path: str | Path) -> Catalog:
    path = Path(path)
    skills: dict[str, Skill] = {}
    for i, item in enumerate(load_json_array(path, "skills")):
        if not isinstance(item, dict) or not item.get("name"):
            raise SkillbenchError("each skill needs a name", path=path, field=f"[{i}].name")
        cat = str(item.get("category", "")).strip().lower()
        cat = _CATEGORY_ALIASES.get(cat, cat.replace(" ", "-"))
        if cat not in CATEGORIES:
            raise SkillbenchError(f"unknown category {item.get('category')!r}", path=path, field=f"[{i}].category")
        pos, neg = _split_example(str(item.get("example") or ""))
        skills[item["name"]] = Skill(
            name=item["name"], category=cat, description=str(item.get("description", "")).strip(),
            when_to_use=str(item.get("when_to_use") or "").strip(),
            procedure=tuple(item.get("procedure") or ()), constraints=tuple(item.get("constraints") or ()),
            positive=pos, negative=neg, source=str(path))
    if not skills:
        raise SkillbenchError("no skills in the file", path=path)
    return Catalog(skills=skills, source=str(path))
