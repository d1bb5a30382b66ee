"""Reports of stored runs, with no model: ``skillbench report RUN...`` (``report_from_runs``) and
``skillbench import`` (``import_run``: the reference study's episodes written as a run with its report)."""

from __future__ import annotations

from pathlib import Path

from .. import stats
from ..episodes import Episode, read_episodes, write_episodes
from ..lineage import declared_sft_pairs
from ..provenance import find_stored_student
from ..runs.importer import convert
from ..runs.store import Run, merge_runs, read_run, write_json
from .summary import build_report


def report_from_runs(paths: list[str | Path], *, seed: int | None = None, resamples: int | None = None,
                     sft_pairs: list[str] | None = None, allow_path_mismatch: bool = False,
                     search_stored: bool = True) -> tuple[dict, list[Episode]]:
    """Recompute the whole report from stored runs (no model): the ``skillbench report`` command."""
    runs = [read_run(p) for p in paths]
    episodes, manifest = merge_runs(runs)
    first = runs[0].manifest
    seed = seed if seed is not None else int(first.get("seed") or stats.DEFAULT_SEED)
    resamples = resamples if resamples is not None else int(first.get("resamples") or stats.DEFAULT_RESAMPLES)
    present = {e.student for e in episodes}
    extra = {}
    if search_stored:
        for s, b in declared_sft_pairs(manifest, sft_pairs):
            if s in present and b not in present:
                found = _stored_base(runs, b)
                if found is not None:
                    extra[b] = found
    report = build_report(episodes, manifest, seed=seed, resamples=resamples, sft_pairs=sft_pairs,
                          allow_path_mismatch=allow_path_mismatch or None, extra_students=extra, strict=True)
    report["sources"] = [str(r.source) for r in runs]
    return report, episodes


def _stored_base(runs: list[Run], base: str):
    """The episodes and manifest of ``base`` from the newest stored run beside the given ones, or None."""
    dirs = sorted({(r.source if r.source.is_dir() else r.source.parent).resolve().parent for r in runs})
    bench_hash = (runs[0].manifest or {}).get("bench_hash")
    hit = find_stored_student(list(dirs), base, bench_hash)
    if hit is None:
        return None
    run_dir, man = hit
    eps = [e for e in read_episodes(run_dir / "episodes.jsonl") if e.student == base]
    man = dict(man)
    man["run_dir"] = str(run_dir)
    return eps, man


def import_run(path: str | Path, out: str | Path, *, bench: str = "bundled", mode: str | None = None,
               resamples: int | None = None) -> dict:
    """Convert (``runs.importer.convert``) and write ``out/{episodes.jsonl, manifest.json, report.json}``;
    returns the report."""
    eps, manifest = convert(path, bench=bench, mode=mode)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_episodes(out / "episodes.jsonl", eps)
    report = build_report(eps, manifest, seed=manifest["seed"], resamples=resamples or manifest["resamples"],
                          strict=False)
    write_json(out / "manifest.json", manifest)
    write_json(out / "report.json", report)
    return report
