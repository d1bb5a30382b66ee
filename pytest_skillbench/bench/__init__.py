"""Bench and catalog: tasks, skills, demonstrations, importers and validation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import SkillbenchError
from .catalog import CATEGORIES, Catalog, Skill, load_catalog_dir, render_skill_block
from .importers import import_reference_skills, import_reference_tasks, is_reference_task_file
from .tasks import QUERY_TYPES, Bench, Task, check_disjoint, compute_task_uid, load_tasks

SPLITS = ("holdout", "train")
# ``--bench`` names of the bundled benches -> (bench version, subfolder of bench_tasks/ and catalog/).
# ``bundled`` is the current bench (v2); ``bundled-v1`` the frozen first bench with its own catalog copy.
BUNDLED_BENCHES = {"bundled": ("v2", ""), "bundled-v1": ("v1", "v1")}
EXTERNAL_VERSION = "external"

__all__ = ["BUNDLED_BENCHES", "CATEGORIES", "QUERY_TYPES", "SPLITS", "Bench", "Catalog", "Skill", "Task",
           "bench_version", "bundled_dir", "compute_task_uid", "load_bench", "load_catalog", "load_tasks",
           "render_skill_block"]


def bundled_dir(name: str, bench: str = "bundled") -> Path:
    """``bench_tasks`` or ``catalog`` of a bundled bench (``bundled`` or ``bundled-v1``): the repo checkout's
    directory, or the copy installed in the wheel."""
    sub = BUNDLED_BENCHES[bench][1]
    here = Path(__file__).resolve().parents[2] / name
    if here.is_dir():
        return here / sub if sub else here
    root = Path(str(resources.files(f"pytest_skillbench.bundled.{name}")))
    return root / sub if sub else root


def load_catalog(path: str | Path) -> Catalog:
    """Load a catalog: a directory of ``<name>.yaml`` files, or the reference study's ``skills.json``."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return import_reference_skills(path)
    return load_catalog_dir(path)


def bench_version(bench: str | Path) -> str:
    """``v2`` for ``bundled``, ``v1`` for ``bundled-v1``, ``external`` for any other bench."""
    return BUNDLED_BENCHES[str(bench)][0] if str(bench) in BUNDLED_BENCHES else EXTERNAL_VERSION


def _load_split_file(path: Path, catalog: Catalog, errors: list | None) -> list[Task]:
    if is_reference_task_file(path):
        return import_reference_tasks(path, catalog=catalog, errors=errors)
    return load_tasks(path, catalog=catalog, errors=errors)


def load_bench(bench: str | Path = "bundled", catalog: str | Path | Catalog | None = None,
               errors: list[SkillbenchError] | None = None) -> Bench:
    """Load a bench: ``bundled`` (v2), ``bundled-v1``, a directory holding ``<split>.jsonl`` files, or one
    task file. A bundled bench without ``catalog`` gets its own catalog (``catalog/`` or ``catalog/v1``).

    A single file is the ``holdout`` split unless its stem names a split (``train.jsonl``). Both the
    project's JSONL format and the reference study's JSON array are accepted.
    """
    if isinstance(catalog, Catalog):
        cat = catalog
    elif catalog is None:
        cat = load_catalog(bundled_dir("catalog", str(bench) if str(bench) in BUNDLED_BENCHES else "bundled"))
    else:
        cat = load_catalog(catalog)
    bundled = str(bench) in BUNDLED_BENCHES
    if bundled:
        root = bundled_dir("bench_tasks", str(bench))
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
    return Bench(splits=splits, source=str(bench) if bundled else str(root), catalog=cat,
                 version=bench_version(bench))
