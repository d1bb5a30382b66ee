"""``--name NAME``: append ``[tool.skillbench.students.NAME]`` to the project's pyproject.toml.

The table is appended as text (the rest of the file is left byte for byte as it was); the result is parsed
before it replaces the file, so a run never leaves an unreadable pyproject.toml behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.students.embedded import EMBEDDED_NAME

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _students(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SkillbenchError(f"malformed TOML: {exc}", path=path) from None
    return data.get("tool", {}).get("skillbench", {}).get("students", {}) or {}


def check_name_free(name: str, root: Path) -> None:
    """Refuse before training when NAME cannot be registered (checked again when writing)."""

    if not _NAME_RE.match(name) or "@" in name:
        raise SkillbenchError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    if name == EMBEDDED_NAME:
        raise SkillbenchError(f"--name {name!r} is the built-in student's name")
    path = root / "pyproject.toml"
    if name in _students(path):
        raise SkillbenchError(f"student {name!r} is already registered; pick another --name or remove "
                              f"[tool.skillbench.students.{name}]", path=path)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def register_student(name: str, out: Path, mode: str, base: dict, root: Path) -> dict:
    """Append the student table; return the entry written."""
    check_name_free(name, root)
    path = root / "pyproject.toml"
    if mode == "lora":
        b = str(base["base"])
        entry = {"base": _rel(Path(b), root) if Path(b).is_absolute() else b, "adapter": _rel(out, root)}
    else:
        entry = {"base": _rel(out, root)}
    if base.get("student"):
        student = base["student"]
        entry["base_student"] = _rel(Path(student), root) if Path(student).is_absolute() else student
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    key = name if re.match(r"^[A-Za-z0-9_-]+$", name) else _toml_str(name)
    block = f"\n[tool.skillbench.students.{key}]\n" + "".join(f"{k} = {_toml_str(str(v))}\n"
                                                                for k, v in entry.items())
    new = text + ("" if not text or text.endswith("\n") else "\n") + block
    try:
        got = tomllib.loads(new).get("tool", {}).get("skillbench", {}).get("students", {}).get(name)
    except tomllib.TOMLDecodeError as exc:
        raise SkillbenchError(f"registering {name!r} would make pyproject.toml invalid ({exc}); add the entry "
                              f"by hand: {block.strip()}", path=path) from None
    if got != entry:
        raise SkillbenchError(f"registering {name!r}: the appended table did not read back as written", path=path)
    tmp = path.with_name(path.name + ".skillbench-tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return entry
