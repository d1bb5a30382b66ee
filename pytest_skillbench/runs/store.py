"""Reading, writing and merging stored runs: one place for the run directory's files, so every module that
reads a run (reports, gates, baselines, the commands) imports it from below instead of from the session.

A run directory holds ``episodes.jsonl`` and ``manifest.json`` (or only ``shards/`` when the session stopped
before writing them); an episodes JSONL file on its own is a run too (its manifest beside it, if any).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..episodes import Episode, Status, read_episodes, write_episodes
from ..errors import SkillbenchError


@dataclass
class Run:
    """One stored run: its directory (or episodes file), episodes and manifest."""

    source: Path
    episodes: list[Episode]
    manifest: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.source.name if self.source.is_dir() else self.source.stem


def is_run_dir(path: Path) -> bool:
    """A run directory (episodes.jsonl or shards/) or an episodes JSONL file."""
    return (path.is_dir() and ((path / "episodes.jsonl").is_file() or (path / "shards").is_dir())) or (
        path.is_file() and path.suffix == ".jsonl")


def _read_shards(run_dir: Path) -> list[Episode]:
    """Episodes of a run that stopped before writing episodes.jsonl (last record of a key wins)."""
    latest: dict[tuple[str, str, str], Episode] = {}
    for shard in sorted((run_dir / "shards").glob("*.jsonl")):
        for ep in read_episodes(shard):
            latest[(ep.student, ep.condition, ep.task_uid)] = ep
    return [latest[k] for k in sorted(latest)]


def read_manifest(path: Path) -> dict:
    """A run's manifest.json ({} when absent); a malformed one is one error naming the file and line."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SkillbenchError(f"malformed manifest: {exc.msg}", path=path, line=exc.lineno) from None


def read_run(path: str | Path) -> Run:
    """A run directory (episodes.jsonl + manifest.json, or only shards/) or an episodes JSONL file."""
    path = Path(path).expanduser()
    if path.is_dir():
        eps_file = path / "episodes.jsonl"
        if eps_file.is_file():
            eps = read_episodes(eps_file)
        elif (path / "shards").is_dir():
            eps = _read_shards(path)
        else:
            raise SkillbenchError("not a run directory (no episodes.jsonl)", path=path)
        man_file = path / "manifest.json"
    elif path.is_file():
        eps = read_episodes(path)
        man_file = path.parent / "manifest.json"
        if (path.parent / "episodes.jsonl").resolve() != path.resolve():
            man_file = path.with_name(path.stem + ".manifest.json")
    else:
        raise SkillbenchError("no such run directory or episodes file", path=path)
    return Run(source=path, episodes=eps, manifest=read_manifest(man_file))


COLUMNS = ("run", "student", "condition", "task_uid", "skill", "category", "query_type", "status", "scored",
           "passed", "format_ok", "judge", "reason", "expected", "extracted", "rationale", "response",
           "gen_tokens")


def episodes_frame(episodes: list[Episode], run: str = ""):
    """The episodes as a pandas DataFrame with ``COLUMNS`` (pandas is imported here, on first use)."""
    import pandas as pd

    rows = []
    for e in episodes:
        v = e.verdict
        rows.append({"run": run, "student": e.student, "condition": e.condition, "task_uid": e.task_uid,
                     "skill": e.skill, "category": e.category, "query_type": e.query_type, "status": v.status,
                     "scored": v.scored,
                     "passed": (1.0 if v.status == Status.PASSED else 0.0) if v.scored else float("nan"),
                     "format_ok": bool(v.format_ok), "judge": v.judge, "reason": v.reason,
                     "expected": v.expected, "extracted": v.extracted, "rationale": v.rationale,
                     "response": e.response, "gen_tokens": e.gen_tokens})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def load_episodes(path):
    """One row per episode (pandas DataFrame) from a run directory or an episodes JSONL file.

    Columns: run, student, condition, task_uid, skill, category, query_type, status (passed | failed |
    unscored | error), scored, passed (1.0 / 0.0, NaN when not scored), format_ok, judge, reason,
    expected, extracted, rationale, response, gen_tokens. Several paths (a list) are concatenated.
    """
    import pandas as pd

    if isinstance(path, (list, tuple)):
        frames = [load_episodes(p) for p in path]
        return pd.concat(frames, ignore_index=True) if frames else episodes_frame([])
    run = read_run(path)
    return episodes_frame(run.episodes, run.label)


def merge_runs(runs: list[Run]) -> tuple[list[Episode], dict]:
    """Episodes and one manifest for several runs; a student present in several runs gets ``@RUN``."""
    if len(runs) == 1:
        return runs[0].episodes, runs[0].manifest
    seen: dict[str, int] = defaultdict(int)
    for r in runs:
        for name in {e.student for e in r.episodes}:
            seen[name] += 1
    episodes: list[Episode] = []
    students: dict[str, dict] = {}
    labels = []
    for r in runs:
        label = r.label
        while label in labels:
            label += "'"
        labels.append(label)
        mstudents = r.manifest.get("students") or {}
        names = list(mstudents) + sorted({e.student for e in r.episodes} - set(mstudents))
        rename = {n: (f"{n}@{label}" if seen[n] > 1 else n) for n in names}
        for n in names:
            if n not in {e.student for e in r.episodes}:
                continue
            entry = dict(mstudents.get(n) or {})
            entry.setdefault("judge", r.manifest.get("judge"))
            entry["run"] = str(r.source)
            students[rename[n]] = entry
        for e in r.episodes:
            episodes.append(Episode.from_dict({**e.to_dict(), "student": rename.get(e.student, e.student)}))
    manifest = {"runs": [{"source": str(r.source), **{k: v for k, v in r.manifest.items() if k != "students"}}
                         for r in runs],
                "students": students, "sft_pairs": sorted({p for r in runs for p in r.manifest.get("sft_pairs", [])})}
    return episodes, manifest


def write_episodes_file(path: Path, eps: list[Episode]) -> None:
    """Write an episodes JSONL atomically (a temporary file beside it, then renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    write_episodes(tmp, eps)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Write a report / manifest JSON atomically (indent 2, UTF-8, trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
