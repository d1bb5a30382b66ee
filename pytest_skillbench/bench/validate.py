"""``skillbench validate``: load a bench (and catalog) collecting every defect, and count what is there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import SkillbenchError
from . import bundled_dir, load_bench, load_catalog
from .demos import load_demos


def validate(bench: str | Path = "bundled", catalog: str | Path | None = None) -> dict:
    errors: list[SkillbenchError] = []
    summary: dict = {"skills": 0, "splits": {}, "query_types": {}, "yes_share": None, "errors": []}
    try:
        cat = load_catalog(catalog or bundled_dir("catalog"))
    except SkillbenchError as err:
        summary["errors"] = [str(err)]
        return summary
    summary["skills"] = len(cat)
    try:
        b = load_bench(bench, cat, errors=errors)
    except SkillbenchError as err:
        summary["errors"] = [str(e) for e in errors] + [str(err)]
        return summary
    qt: Counter = Counter()
    per_skill: dict[str, Counter] = {}
    yes = yn = 0
    for split, tasks in b.splits.items():
        summary["splits"][split] = len(tasks)
        for t in tasks:
            qt[t.query_type] += 1
            per_skill.setdefault(t.skill, Counter())[split] += 1
            if t.query_type == "YES_NO":
                yn += 1
                yes += t.answer.lower() == "yes"
    summary["query_types"] = dict(sorted(qt.items()))
    summary["yes_share"] = yes / yn if yn else None
    summary["per_skill"] = {k: dict(v) for k, v in sorted(per_skill.items())}
    root = bundled_dir("bench_tasks") if str(bench) == "bundled" else Path(bench)
    demos_path = root / "demos.jsonl" if root.is_dir() else None
    if demos_path is not None and demos_path.is_file():
        demos = load_demos(demos_path, cat, errors=errors)
        summary["demos"] = {"rows": len(demos), "by_condition": dict(Counter(d.condition for d in demos))}
    summary["errors"] = [str(e) for e in errors]
    return summary
