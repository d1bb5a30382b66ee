"""The skill catalog: typed skills loaded from YAML, and the SKILL-block renderer.

A skill is one human-reviewable YAML file (``catalog/<name>.yaml``). The SKILL block is the exact text
appended to the solver system prompt in the ``curated`` condition; its layout is pinned by a snapshot test
because any change to it changes every curated prompt (and therefore the generation cache keys).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SkillbenchError

CATEGORIES = ("logical", "rhetorical", "reasoning", "literary", "theory-of-mind", "physical-knowledge")
REQUIRED_FIELDS = ("name", "category", "description", "when_to_use", "procedure", "constraints", "example")


@dataclass(frozen=True)
class Example:
    case: str
    why: str


@dataclass(frozen=True)
class Skill:
    name: str
    category: str
    description: str
    when_to_use: str = ""
    procedure: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    positive: Example | None = None
    negative: Example | None = None
    source: str = field(default="", compare=False)

    def render(self) -> str:
        """The SKILL block for the solver system prompt (empty sections are left out)."""
        return render_skill_block(self)


def render_skill_block(skill: Skill) -> str:
    parts = [f"--- SKILL: {skill.name} ---", skill.description.strip()]
    if skill.when_to_use.strip():
        parts += ["", "## When to Use", skill.when_to_use.strip()]
    if skill.procedure:
        parts += ["", "## Procedure"] + [f"{i}. {step.strip()}" for i, step in enumerate(skill.procedure, 1)]
    if skill.constraints:
        parts += ["", "## Constraints"] + [f"- {c.strip()}" for c in skill.constraints]
    examples = []
    if skill.positive:
        examples.append(f"Positive: {skill.positive.case.strip()}\nWhy: {skill.positive.why.strip()}")
    if skill.negative:
        examples.append(f"Negative: {skill.negative.case.strip()}\nWhy: {skill.negative.why.strip()}")
    if examples:
        parts += ["", "## Example", "\n".join(examples)]
    parts.append("--- END SKILL ---")
    return "\n".join(parts)


@dataclass
class Catalog:
    skills: dict[str, Skill]
    source: str = ""

    def __contains__(self, name: str) -> bool:
        return name in self.skills

    def __getitem__(self, name: str) -> Skill:
        try:
            return self.skills[name]
        except KeyError:
            raise SkillbenchError(f"unknown skill {name!r} (catalog {self.source or '?'} has {len(self.skills)})")

    def __len__(self) -> int:
        return len(self.skills)

    def names(self) -> list[str]:
        return sorted(self.skills)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for name in self.names():
            h.update(self.skills[name].render().encode())
        return h.hexdigest()[:16]


def _text(data: dict, key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SkillbenchError("missing or empty section", path=path, field=key)
    return value


def _strings(data: dict, key: str, path: Path, lo: int, hi: int | None = None) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SkillbenchError("must be a list of non-empty strings", path=path, field=key)
    if len(value) < lo or (hi is not None and len(value) > hi):
        want = f"{lo}-{hi}" if hi else f"at least {lo}"
        raise SkillbenchError(f"has {len(value)} entries, expected {want}", path=path, field=key)
    return tuple(value)


def _example(data: dict, key: str, path: Path) -> Example:
    ex = data.get("example")
    if not isinstance(ex, dict) or not isinstance(ex.get(key), dict):
        raise SkillbenchError(f"missing the {key} example (needs case and why)", path=path, field=f"example.{key}")
    item = ex[key]
    for sub in ("case", "why"):
        if not isinstance(item.get(sub), str) or not item[sub].strip():
            raise SkillbenchError("missing or empty", path=path, field=f"example.{key}.{sub}")
    return Example(case=item["case"], why=item["why"])


def skill_from_dict(data: object, path: Path) -> Skill:
    """Validate one skill mapping (from a catalog YAML file)."""
    if not isinstance(data, dict):
        raise SkillbenchError("a skill file must hold one YAML mapping", path=path)
    unknown = sorted(set(data) - set(REQUIRED_FIELDS))
    if unknown:
        raise SkillbenchError(f"unknown field(s) {', '.join(unknown)}", path=path, field=unknown[0])
    for key in REQUIRED_FIELDS:
        if key not in data:
            raise SkillbenchError("missing section", path=path, field=key)
    name = _text(data, "name", path).strip()
    category = _text(data, "category", path).strip()
    if category not in CATEGORIES:
        raise SkillbenchError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})",
                              path=path, field="category")
    return Skill(
        name=name,
        category=category,
        description=_text(data, "description", path).strip(),
        when_to_use=_text(data, "when_to_use", path).strip(),
        procedure=_strings(data, "procedure", path, 5, 6),
        constraints=_strings(data, "constraints", path, 3),
        positive=_example(data, "positive", path),
        negative=_example(data, "negative", path),
        source=str(path),
    )


def load_skill(path: Path) -> Skill:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SkillbenchError(f"malformed YAML: {getattr(exc, 'problem', exc)}", path=path,
                              line=None if mark is None else mark.line + 1) from None
    except OSError as exc:
        raise SkillbenchError(f"cannot read: {exc.strerror}", path=path) from None
    skill = skill_from_dict(data, Path(path))
    if skill.name != Path(path).stem:
        raise SkillbenchError(f"name {skill.name!r} does not match the file name", path=path, field="name")
    return skill


def load_catalog_dir(path: str | Path) -> Catalog:
    """Load a catalog directory of ``<name>.yaml`` files (``bench.load_catalog`` also reads the reference
    study's ``skills.json`` through ``importers``)."""
    path = Path(path)
    if not path.is_dir():
        raise SkillbenchError("catalog not found (expected a directory of skill YAML files or skills.json)",
                              path=path)
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
    if not files:
        raise SkillbenchError("no skill files (*.yaml) in the catalog directory", path=path)
    skills: dict[str, Skill] = {}
    for f in files:
        skill = load_skill(f)
        if skill.name in skills:
            raise SkillbenchError(f"duplicate skill {skill.name!r}", path=f, field="name")
        skills[skill.name] = skill
    return Catalog(skills=skills, source=str(path))
