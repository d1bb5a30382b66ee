"""Answer forcing's cost on the Quick-start main job: generation alone vs generation with forcing inline.

Both are measured in one process on the same requests (the bundled holdout x both conditions by default, the
embedded SmolLM2-135M, greedy, --max-new-tokens 256, batch 16, no cache), alternating, medians of --reps; the
separate forcing pass over stored responses (what a run over cached generations does) is timed too. The
generated text must be identical with and without forcing. Target (issue 16): forcing adds at most 20% to the
generation wall time.

    python benchmarks/forcing_overhead.py [--episodes 400] [--reps 1] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, median  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--bench", default="bundled")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from pytest_skillbench.bench import load_bench
    from pytest_skillbench.forcing import target_for
    from pytest_skillbench.prompts import messages
    from pytest_skillbench.students.base import GenRequest
    from pytest_skillbench.students.hf import HFBackend, ModelPool
    from pytest_skillbench.students.registry import StudentSpec

    bench = load_bench(a.bench)
    tasks = bench.split("holdout")[: a.episodes // 2]
    reqs = [GenRequest(t.task_uid, c, messages(t, c, bench.catalog), force=target_for(t))
            for t in tasks for c in ("baseline", "curated")]
    be = HFBackend(StudentSpec(name="smollm2-135m", base="smollm2-135m"), ModelPool(),
                   max_new_tokens=a.max_new_tokens, batch_size=a.batch_size, device="cpu", dtype="float32",
                   repetition_penalty=1.05)
    be.generate(reqs[:16])  # load, reorder weights, warm up
    plain_walls, forced_walls, pass_walls = [], [], []
    plain = forced_texts = None
    forced: dict = {}
    for rep in range(a.reps):
        for which in ("plain", "forced") if rep % 2 == 0 else ("forced", "plain"):  # alternate the order
            if which == "plain":
                t0 = time.perf_counter()
                plain = be.generate(reqs)
                plain_walls.append(time.perf_counter() - t0)
                plain_stats = be.last_stats.as_dict()
            else:
                forced = {}
                t0 = time.perf_counter()
                forced_texts = be.generate(reqs, on_forced=lambda r, res: forced.__setitem__((r.task_uid, r.condition),
                                                                                             res))
                forced_walls.append(time.perf_counter() - t0)
                forced_stats = be.last_stats.as_dict()
        later: dict = {}
        t0 = time.perf_counter()
        be.force([(r, p.text) for r, p in zip(reqs, plain)],
                 lambda r, res: later.__setitem__((r.task_uid, r.condition), res))
        pass_walls.append(time.perf_counter() - t0)
    same = sum(x.text == y.text for x, y in zip(plain, forced_texts)) / len(plain)
    agree = sum(forced[k]["answer"] == later[k]["answer"] for k in forced) / max(1, len(forced))
    g, f, p = median(plain_walls), median(forced_walls), median(pass_walls)
    rows = [
        {"system": "generation only", "episodes": len(reqs), "wall_s": g, "ratio": 1.0,
         "row_steps": plain_stats["decode_row_steps"]},
        {"system": "generation + forcing inline", "episodes": len(reqs), "wall_s": f, "ratio": f / g,
         "row_steps": forced_stats["decode_row_steps"], "forced_rows": forced_stats["forced_rows"]},
        {"system": "forcing pass over stored responses", "episodes": len(later), "wall_s": p, "ratio": p / g},
    ]
    emit("answer forcing overhead (Quick-start main job)", rows,
         ["system", "episodes", "wall_s", "ratio", "row_steps", "forced_rows"], a.json,
         {"identical_text_share": same, "inline_vs_pass_same_answer_share": agree, "reps": a.reps})
    if not a.json:
        print(f"identical generated text with and without forcing: {100 * same:.1f}%; inline and separate-pass "
              f"forced answers agree: {100 * agree:.1f}%; forcing adds {100 * (f / g - 1):+.1f}% to generation")


if __name__ == "__main__":
    main()
