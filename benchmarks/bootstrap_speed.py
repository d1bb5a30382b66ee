"""Time of the paired bootstrap: 10,000 resamples of 200 paired tasks (goal < 0.2 s).

    python benchmarks/bootstrap_speed.py [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import emit, median  # noqa: E402

from pytest_skillbench import stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    base, cur = stats.paired_table(140, 10, 25, 25)
    rows = []
    for n_res in (1_000, 10_000):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            stats.delta_ci(base, cur, resamples=n_res)
            times.append(time.perf_counter() - t0)
        rows.append({"pairs": 200, "resamples": n_res, "median_s": median(times), "goal_s": 0.2})
    emit("paired bootstrap speed (median of 5)", rows, ["pairs", "resamples", "median_s", "goal_s"], a.json)


if __name__ == "__main__":
    main()
