"""Crash safety of a run: shard merging, resuming an interrupted run, and crashed-worker episodes.

* Every finished episode is appended and flushed to ``RUN/shards/<worker>-<pid>.jsonl`` by the process
  that ran it. At session end the controller merges the shards with the episodes that reached it on test
  reports, so an episode whose report was lost (a worker that died right after finishing it) is still in
  the report. Only the selected items are merged (``-k`` narrows the report and the gates).
* ``RUN/resume.json`` holds the run's *resume key* (a hash of everything that changes an episode:
  students and their weights' file signatures, bench, catalog, prompts, generation and judge settings)
  and the owner process. A session whose key matches reuses the run directory's finished episodes
  instead of generating and judging them again -- with ``--skillbench-run-dir DIR``, or, without it, the
  newest interrupted run (no ``report.json``, owner process gone, same host) under ``.skillbench/runs``.
  Episodes in ``error`` are not reused: they are retried. A run directory with another key has its
  shards moved aside (``shards.stale-<time>``), never mixed in.
* Generations are cached per prompt as each batch ends (``generation.py``), so a resumed run also skips
  every finished generation of an item that had not been judged yet.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
from dataclasses import asdict
from pathlib import Path

from ..episodes import Episode, Reason, Status
from ..prompts import prompts_hash

RESUME_FILE = "resume.json"
CRASH_REASON = Reason.WORKER_CRASHED
_OUTPUT_ONLY = {"json", "episodes", "run_dir", "gate", "gate_against", "gate_margin", "seed", "resamples",
                "allow_path_mismatch", "sft_pair", "students", "cache"}


def _file_signature(path: str | None) -> list | None:
    """(name, size, mtime) of the files of a model / adapter directory: cheap, and changes on retraining."""
    if not path:
        return None
    p = Path(path)
    if not p.is_dir():
        return None
    out = []
    for f in sorted(p.iterdir()):
        if f.is_file():
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def resume_key(session) -> str:
    """A hash of everything that changes an episode of this session (not of where the output goes)."""
    s = session.settings
    cfg = {k: v for k, v in asdict(s).items() if k not in _OUTPUT_ONLY}
    students = {}
    for name, spec in session.specs.items():
        d = {k: v for k, v in spec.to_dict().items() if k != "origin"}
        if spec.backend == "hf":
            d["files"] = [_file_signature(spec.base), _file_signature(spec.adapter)]
        elif spec.backend == "replay":
            st = Path(spec.path).stat()
            d["files"] = [[str(spec.path), st.st_size, st.st_mtime_ns]]
        students[name] = d
    cfg["students"] = students
    cfg["bench_hash"] = session.bench.content_hash(s.split)
    cfg["catalog_hash"] = session.catalog.content_hash()
    cfg["prompts_hash"] = prompts_hash()
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_resume(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RESUME_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def find_interrupted_run(runs_root: Path, key: str, limit: int = 50) -> Path | None:
    """The newest run under ``runs_root`` with this key that was interrupted (no report, owner gone)."""
    if not runs_root.is_dir():
        return None
    cands = [p for p in runs_root.iterdir() if (p / RESUME_FILE).is_file() and not (p / "report.json").exists()]
    cands.sort(key=lambda p: (p / RESUME_FILE).stat().st_mtime, reverse=True)
    host = socket.gethostname()
    for p in cands[:limit]:
        info = _read_resume(p)
        if not info or info.get("key") != key or info.get("host") != host:
            continue
        if _alive(int(info.get("pid") or 0)) and int(info.get("pid") or 0) != os.getpid():
            continue  # that session is still running
        return p
    return None


def claim(run_dir: Path, key: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"key": key, "pid": os.getpid(), "host": socket.gethostname(),
            "claimed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    tmp = run_dir / (RESUME_FILE + ".tmp")
    tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / RESUME_FILE)


def read_shards(paths) -> dict[tuple[str, str, str], Episode]:
    """Episodes of shard files (the last record of a key wins; a torn last line after a kill is skipped)."""
    out: dict[tuple[str, str, str], Episode] = {}
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 in a JSON string is no line end
        except OSError:
            continue
        for line in lines:
            if not line.strip():
                continue
            try:
                ep = Episode.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, AttributeError):
                continue  # a line cut short by kill -9
            out[(ep.student, ep.condition, ep.task_uid)] = ep
    return out


def shard_files(run_dir: Path) -> list[Path]:
    d = run_dir / "shards"
    if not d.is_dir():
        return []
    return sorted(d.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def prepare(run_dir: Path, key: str, *, explicit: bool, write) -> tuple[Path, list[str], str | None]:
    """Controller (or plain run) start: choose and claim the run directory.

    Returns (the run directory: without ``explicit`` the newest interrupted run with this key, if any; the
    shard files whose finished episodes are reused; a note when earlier shards were made with other settings
    and moved aside)."""
    if not explicit:
        found = find_interrupted_run(run_dir.parent, key)
        if found is not None:
            run_dir = found
    info = _read_resume(run_dir)
    previous = shard_files(run_dir)
    note = None
    if previous and (info is None or info.get("key") != key):
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        stale = run_dir / f"shards.stale-{stamp}"
        os.replace(run_dir / "shards", stale)
        note = f"{run_dir}: earlier episodes were made with other settings; moved aside to {stale.name}"
        write(f"[skillbench] {note}")
        previous = []
    claim(run_dir, key)
    return run_dir, [str(p) for p in previous], note


def finished_episodes(paths) -> dict[tuple[str, str, str], Episode]:
    """Finished episodes of earlier processes of this run (reused by ``SkillbenchSession.run``)."""
    return {k: e for k, e in read_shards(paths).items() if e.verdict.status != Status.ERROR}


def merge_shards(episodes: dict[tuple[str, str, str], Episode], run_dir: Path, selected: set) -> None:
    """Session end: fold the shards of this run into ``episodes`` (those that arrived on reports).

    An episode from a report wins, except a crashed-worker ``error`` when a shard holds the finished one.
    Only selected items are merged when the selection is known.
    """
    for key, ep in read_shards(shard_files(run_dir)).items():
        if selected and key not in selected:
            continue
        have = episodes.get(key)
        if have is None or (have.verdict.reason == CRASH_REASON and ep.verdict.status != Status.ERROR):
            episodes[key] = ep
