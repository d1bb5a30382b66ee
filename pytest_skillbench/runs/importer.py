"""The reference study's ``episodes.json`` / ``summary.json`` as episodes and a manifest (``convert``);
``skillbench import PATH`` writes them as a run directory (``report.offline.import_run``).

``episodes.json`` is a JSON array of ``{task_uid, model, condition, skill_name, mode, response, passed,
score, tokens, elapsed_s, judge_rationale}``. Mapping: ``model`` -> student (``model[mode]`` when the file
holds several judging modes and ``--mode`` does not pick one), ``skill_name`` -> skill, ``tokens`` ->
gen_tokens, ``judge_rationale`` -> verdict rationale, ``mode`` -> verdict judge. Status: ``passed`` true ->
passed; false -> failed, except that a rationale starting ``judge evaluation failed:`` is an *error*
episode (the judge broke; not a failure of the student); ``passed`` null -> unscored. Query type, gold
answer and category come from the bench when it holds the task uid. ``summary.json`` (if beside it) is kept
verbatim in the manifest. The run directory gets episodes.jsonl, manifest.json and report.json, so every
other command (``skillbench report``, ``load_episodes``) reads it like a run of the plugin.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .. import __version__, stats
from ..bench import load_bench
from ..bench.importers import load_json_array
from ..episodes import Episode, Status, Verdict
from ..errors import SkillbenchError
from ..judges.deterministic import extract_answer

JUDGE_FAILED = "judge evaluation failed:"
REQUIRED = ("task_uid", "model", "condition", "passed")


def _load(path: Path) -> tuple[list, dict | None, Path]:
    if path.is_dir():
        eps_file = path / "episodes.json"
        if not eps_file.is_file():
            raise SkillbenchError("no episodes.json in the directory", path=path)
    else:
        eps_file = path
    data = load_json_array(eps_file, "episodes")
    summary = None
    sfile = eps_file.parent / "summary.json"
    if sfile.is_file():
        try:
            summary = json.loads(sfile.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SkillbenchError(f"malformed JSON: {exc.msg}", path=sfile, line=exc.lineno) from None
    return data, summary, eps_file


def _status(row: dict) -> tuple[str, str]:
    rationale = str(row.get("judge_rationale") or "")
    passed = row.get("passed")
    if passed is True:
        return Status.PASSED, ""
    if rationale.strip().lower().startswith(JUDGE_FAILED):
        return Status.ERROR, "judge_error"
    if passed is False:
        return Status.FAILED, ""
    return Status.UNSCORED, "no_verdict"


def convert(path: str | Path, *, bench: str = "bundled", mode: str | None = None) -> tuple[list[Episode], dict]:
    """Episodes and a manifest from the reference layout (nothing written)."""
    path = Path(path)
    data, summary, eps_file = _load(path)
    try:
        b = load_bench(bench)
        tasks = {t.task_uid: t for split in b.splits.values() for t in split}
        catalog = b.catalog
    except SkillbenchError:
        tasks, catalog = {}, None
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise SkillbenchError("each episode must be a JSON object", path=eps_file, field=f"[{i}]")
        for key in REQUIRED:
            if key not in row:
                raise SkillbenchError("missing field", path=eps_file, field=f"[{i}].{key}")
        if row["passed"] is not None and not isinstance(row["passed"], bool):
            raise SkillbenchError("passed must be true, false or null", path=eps_file, field=f"[{i}].passed")
        if mode is None or row.get("mode") == mode:
            rows.append(row)
    if mode is not None and not rows:
        raise SkillbenchError(f"no episode has mode {mode!r}", path=eps_file)
    modes_by_model: dict[str, set] = {}
    for row in rows:
        modes_by_model.setdefault(str(row["model"]), set()).add(row.get("mode"))
    episodes: dict[tuple[str, str, str], Episode] = {}
    judges: dict[str, str | None] = {}
    duplicates = 0
    for row in rows:
        model, m = str(row["model"]), row.get("mode")
        student = f"{model}[{m}]" if len(modes_by_model[model]) > 1 and m else model
        judges[student] = m
        status, reason = _status(row)
        task = tasks.get(str(row["task_uid"]))
        skill = str(row.get("skill_name") or (task.skill if task else ""))
        response = row.get("response")
        verdict = Verdict(status=status, expected=task.answer if task else "",
                          extracted=extract_answer(response) if isinstance(response, str) else None,
                          judge=f"reference:{m}" if m else "reference", rationale=str(row.get("judge_rationale") or ""),
                          format_ok=isinstance(response, str) and extract_answer(response) is not None,
                          reason=reason, score=row.get("score") if isinstance(row.get("score"), (int, float)) else None)
        ep = Episode(student=student, condition=str(row["condition"]), task_uid=str(row["task_uid"]), skill=skill,
                     query_type=task.query_type if task else "", response=response if isinstance(response, str) else None,
                     verdict=verdict,
                     category=catalog[skill].category if catalog is not None and skill in catalog else "",
                     gen_tokens=row.get("tokens") if isinstance(row.get("tokens"), int) else None,
                     extra={k: row[k] for k in ("mode", "elapsed_s") if k in row})
        key = (ep.student, ep.condition, ep.task_uid)
        duplicates += key in episodes
        episodes[key] = ep
    eps = [episodes[k] for k in sorted(episodes)]
    students = {}
    for name in sorted(judges):
        model = name.split("[", 1)[0] if judges[name] and name.endswith("]") else name
        students[name] = {"spec": {"name": name, "backend": "imported", "model": model},
                          "path": {"backend": "imported"},
                          "provenance": {"backend": "imported", "base": model, "thinking": "keep"},
                          "judge": {"mode": judges[name], "backend": "reference"}}
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    conditions = sorted({e.condition for e in eps})
    manifest = {"skillbench_version": __version__, "imported_from": str(eps_file), "imported_at": now,
                "import": {"records": len(data), "episodes": len(eps), "duplicates": duplicates,
                           "errors": sum(e.verdict.status == Status.ERROR for e in eps),
                           "matched_bench_tasks": sum(e.task_uid in tasks for e in eps), "mode": mode},
                "students": students, "bench": bench, "conditions": conditions,
                "judge": {"mode": mode or "reference", "backend": "reference", "model": None},
                "seed": stats.DEFAULT_SEED, "resamples": stats.DEFAULT_RESAMPLES, "started": None, "finished": None,
                "reference_summary": summary}
    unknown = [c for c in conditions if c not in ("baseline", "curated")]
    if unknown:
        manifest["import"]["unknown_conditions"] = unknown
    return eps, manifest
