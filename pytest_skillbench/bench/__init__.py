"""Bench and catalog: tasks, skills, demonstrations, importers and validation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import SkillbenchError
from .catalog import CATEGORIES, Catalog, Skill, load_catalog, render_skill_block
from .importers import import_reference_tasks, is_reference_task_file
from .tasks import QUERY_TYPES, Bench, Task, check_disjoint, compute_task_uid, load_tasks

SPLITS = ("holdout", "train")

__all__ = ["Bench", "Catalog", "Skill", "Task", "CATEGORIES", "QUERY_TYPES", "SPLITS", "bundled_dir",
           "load_bench", "load_catalog", "load_tasks", "render_skill_block", "compute_task_uid"]


def bundled_dir(name: str) -> Path:
    """``bench_tasks`` or ``catalog``: the repo checkout's directory, or the copy installed in the wheel."""
    here = Path(__file__).resolve().parents[2] / name
    if here.is_dir():
        return here
    return Path(str(resources.files(f"pytest_skillbench.bundled.{name}")))


def _load_split_file(path: Path, catalog: Catalog, errors: list | None) -> list[Task]:
    if is_reference_task_file(path):
        return import_reference_tasks(path, catalog=catalog, errors=errors)
    return load_tasks(path, catalog=catalog, errors=errors)


def load_bench(bench: str | Path = "bundled", catalog: str | Path | Catalog | None = None,
               errors: list[SkillbenchError] | None = None) -> Bench:
    """Load a bench: ``bundled``, a directory holding ``<split>.jsonl`` files, or one task file.

    A single file is the ``holdout`` split unless its stem names a split (``train.jsonl``). Both the
    project's JSONL format and the reference study's JSON array are accepted.
    """
    if isinstance(catalog, Catalog):
        cat = catalog
    elif catalog is None:
        cat = load_catalog(bundled_dir("catalog"))
    else:
        cat = load_catalog(catalog)
    if str(bench) == "bundled":
        root = bundled_dir("bench_tasks")
    else:
        root = Path(bench)
    if not root.exists():
        raise SkillbenchError("bench not found", path=root)
    splits: dict[str, list[Task]] = {}
    if root.is_dir():
        for split in SPLITS:
            for cand in (root / f"{split}.jsonl", root / f"{split}.json"):
                if cand.is_file():
                    splits[split] = _load_split_file(cand, cat, errors)
                    break
        if not splits:
            raise SkillbenchError("no holdout.jsonl or train.jsonl in the bench directory", path=root)
    else:
        split = root.stem if root.stem in SPLITS else "holdout"
        splits[split] = _load_split_file(root, cat, errors)
    check_disjoint(splits, errors, str(root))
    return Bench(splits=splits, source="bundled" if str(bench) == "bundled" else str(root), catalog=cat)
