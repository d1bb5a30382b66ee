"""Plugin overhead: wall time, items/s and peak RSS of replay sessions (deterministic judge, report included).

    python benchmarks/plugin_overhead.py [--items 400 4000 40000] [--reps 3] [--json]

Each session replays stored responses for K students x 2 conditions x 200 holdout tasks (K = items / 400)
in a fresh pytest subprocess, so the figure includes interpreter start, collection, running, aggregation
and the report. Growth should be linear in items with a small constant.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, median  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pytest_skillbench.bench import load_bench  # noqa: E402


def write_students(root: Path, k: int) -> list[str]:
    tasks = load_bench("bundled").split("holdout")
    names = []
    for i in range(k):
        p = root / f"s{i:03d}.jsonl"
        with open(p, "w") as fh:
            for j, t in enumerate(tasks):
                for cond in ("baseline", "curated"):
                    ans = t.answer if (i + j + len(cond)) % 3 else "zzz"
                    fh.write(json.dumps({"task_uid": t.task_uid, "condition": cond, "student": f"s{i:03d}",
                                         "response": f"Reasoning.\nANSWER: {ans}"}) + "\n")
        names.append(f"replay:{p}")
    return names


def run_once(root: Path, students: list[str]) -> tuple[float, float]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
            "--skillbench-json", str(root / "r.json"), "--skillbench-run-dir", str(root / "run")]
    for s in students:
        args += ["--student", s]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[400, 4000, 40000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in a.items:
            students = write_students(root, max(1, n // 400))
            walls, rss = [], 0.0
            for _ in range(a.reps):
                w, r = run_once(root, students)
                walls.append(w)
                rss = max(rss, r)
            m = median(walls)
            rows.append({"items": n, "wall_s": m, "items_per_s": n / m, "ms_per_item": 1000 * m / n,
                         "peak_rss_mib": rss})
    if len(rows) >= 2:
        slope = (rows[-1]["wall_s"] - rows[0]["wall_s"]) / (rows[-1]["items"] - rows[0]["items"])
        extra = {"marginal_ms_per_item": round(1000 * slope, 3),
                 "fixed_cost_s": round(rows[0]["wall_s"] - slope * rows[0]["items"], 2),
                 # linear growth means these segment slopes agree; a rising slope is super-linear cost
                 "segment_ms_per_item": {f"{x['items']}->{y['items']}": round(
                     1000 * (y["wall_s"] - x["wall_s"]) / (y["items"] - x["items"]), 3)
                     for x, y in zip(rows, rows[1:])}}
    else:
        extra = {}
    emit("plugin overhead: replay sessions (median of %d)" % a.reps, rows,
         ["items", "wall_s", "items_per_s", "ms_per_item", "peak_rss_mib"], a.json, extra)


if __name__ == "__main__":
    main()
