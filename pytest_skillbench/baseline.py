"""Committed baselines: item-level verdicts of a run, to gate a new adapter against without re-running the old.

``skillbench baseline save RUN --out baselines/v2.0.json [--student NAME ...]`` writes::

    {"format": "skillbench-baseline/1", "created": ..., "source": RUN, "students": ["v2.0"],
     "summary": {"v2.0": {"baseline": {"n", "scored", "passed", "pass_rate"}, "curated": {...}}},
     "manifest": {...the run's manifest, students narrowed to the saved ones...},
     "items": [{"student", "condition", "task_uid", "skill", "category", "query_type", "status",
                "expected", "extracted", "judge", "reason", "format_ok"}, ...]}

Items are sorted (student, condition, task_uid) and hold no responses, so the file is small and diffs
well in review. ``--gate-against baselines/v2.0.json`` pairs the new run's verdicts with these by task;
the manifest carries the baseline's inference path for the matched-path guard.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from .episodes import Episode, Status, Verdict
from .errors import SkillbenchError
from .runs.store import read_run

FORMAT = "skillbench-baseline/1"
ITEM_FIELDS = ("student", "condition", "task_uid", "skill", "category", "query_type")
VERDICT_FIELDS = ("status", "expected", "extracted", "judge", "reason", "format_ok")


def baseline_dict(episodes: list[Episode], manifest: dict, source: str, students: list[str] | None = None) -> dict:
    present = sorted({e.student for e in episodes})
    if students:
        missing = [s for s in students if s not in present]
        if missing:
            raise SkillbenchError(f"student {missing[0]!r} is not in {source} (students: {', '.join(present)})")
    keep = list(students) if students else present
    eps = sorted((e for e in episodes if e.student in keep), key=lambda e: (e.student, e.condition, e.task_uid))
    items = []
    for e in eps:
        row = {k: getattr(e, k) for k in ITEM_FIELDS}
        row.update({k: getattr(e.verdict, k) for k in VERDICT_FIELDS})
        items.append(row)
    summary: dict = {}
    for s in keep:
        for cond in ("baseline", "curated"):
            ce = [e for e in eps if e.student == s and e.condition == cond]
            if not ce:
                continue
            passed = sum(e.verdict.status == Status.PASSED for e in ce)
            scored = sum(e.verdict.scored for e in ce)
            summary.setdefault(s, {})[cond] = {"n": len(ce), "scored": scored, "passed": passed,
                                               "pass_rate": passed / scored if scored else None,
                                               "errors": sum(e.verdict.status == Status.ERROR for e in ce)}
    man = dict(manifest or {})
    if isinstance(man.get("students"), dict):
        man["students"] = {k: v for k, v in man["students"].items() if k in keep}
    return {"format": FORMAT, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": source, "students": keep, "summary": summary, "manifest": man, "items": items}


def save_baseline(run_path: str | Path, out: str | Path, students: list[str] | None = None) -> dict:
    run = read_run(run_path)
    if not run.episodes:
        raise SkillbenchError("the run holds no episodes", path=run_path)
    data = baseline_dict(run.episodes, run.manifest, str(run_path), students)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(out)
    return data


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SkillbenchError(f"cannot read baseline: {exc.strerror}", path=path) from None
    except json.JSONDecodeError as exc:
        raise SkillbenchError(f"malformed baseline JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SkillbenchError(f"not a skillbench baseline (expected \"format\": \"{FORMAT}\"; write one with "
                              "`skillbench baseline save RUN --out FILE`)", path=path)
    return data


def baseline_episodes(data: dict, student: str | None = None) -> list[Episode]:
    out = []
    for n, row in enumerate(data.get("items") or [], 1):
        if student is not None and row.get("student") != student:
            continue
        try:
            verdict = Verdict(**{k: row[k] for k in VERDICT_FIELDS if k in row})
            out.append(Episode(response=None, verdict=verdict, **{k: row.get(k, "") for k in ITEM_FIELDS}))
        except TypeError as exc:
            raise SkillbenchError(f"baseline item {n}: {exc}") from None
    return out


@dataclass
class Reference:
    """The non-inferiority reference: a student of this run, or a stored baseline."""

    name: str
    source: str  # "run" or a file / directory path
    episodes: list[Episode] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @property
    def in_run(self) -> bool:
        return self.source == "run"


def load_reference(ref: str, root: Path) -> Reference:
    """``--gate-against PATH[::STUDENT]`` (a baseline file, a run directory or an episodes file)."""
    path_text, _, student = ref.partition("::")
    path = Path(path_text).expanduser()
    if not path.is_absolute() and (root / path).exists():
        path = root / path
    if not path.exists():
        raise SkillbenchError(f"--gate-against {ref}: not a student of this run, and no such baseline file or run "
                              "directory")
    if path.is_file() and path.suffix == ".json":
        data = read_baseline(path)
        names = list(data.get("students") or [])
        manifest = data.get("manifest") or {}
        episodes_of = lambda s: baseline_episodes(data, s)
    else:
        run = read_run(path)
        names = sorted({e.student for e in run.episodes})
        manifest = run.manifest
        episodes_of = lambda s: [e for e in run.episodes if e.student == s]
    if student:
        if student not in names:
            raise SkillbenchError(f"--gate-against {ref}: {path} has no student {student!r} "
                                  f"(students: {', '.join(names)})")
    elif len(names) == 1:
        student = names[0]
    else:
        raise SkillbenchError(f"--gate-against {ref}: {path} holds {len(names)} students ({', '.join(names)}); "
                              f"name one as {path_text}::STUDENT")
    return Reference(name=student, source=str(Path(path_text)), episodes=episodes_of(student), manifest=manifest)
