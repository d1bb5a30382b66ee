"""The generation engine's CPU kernels, each against what it replaced, on the embedded student's shapes.

    python benchmarks/engine_kernels.py [--reps 15] [--json]

* linear: the 30 MLP gate matrices of SmolLM2-135M (576 -> 1536, random weights), one call each, at
  1..5,120 rows: ``nn.Linear`` vs oneDNN on weights reordered once (``students/cpu_linear.py``).
* decode step: one forward of the embedded student (random KV) at a decode batch typical of the bench
  (rows reading 600-token SKILL-block carriers through ``students/cascade.py``): one attention call per
  carrier vs small carriers stacked into one call, and the layout it replaced (every row holding its prefix
  in its own KV rows).
Medians of --reps calls after a warm-up; ratios inside one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import emit, median


def timed(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return median(out) * 1000


def linear_rows(reps: int) -> list[dict]:
    import torch

    from pytest_skillbench.students.cpu_linear import PACK_HINT

    torch.manual_seed(0)
    weights = [torch.randn(1536, 576) * 0.05 for _ in range(30)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, PACK_HINT) for w in weights]
    rows = []
    for m in (1, 4, 16, 32, 680, 5120):
        x = torch.randn(m, 576)
        with torch.no_grad():
            plain = timed(lambda: [torch.nn.functional.linear(x, w) for w in weights], reps if m < 600 else 3)
            fast = timed(lambda: [torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "") for p in packed],
                         reps if m < 600 else 3)
        rows.append({"kernel": f"linear, {m} rows x 30 matrices", "before_ms": round(plain, 2),
                     "after_ms": round(fast, 2), "speedup": round(plain / fast, 2)})
    return rows


def decode_rows(reps: int) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    from pytest_skillbench.students import cascade, engine
    from pytest_skillbench.students.cpu_linear import packed_linears
    from pytest_skillbench.students.embedded import converted_dir

    model = AutoModelForCausalLM.from_pretrained(str(converted_dir()), dtype=torch.float32).eval()
    n_layers, kvh, dim, _ = engine._kv_shape(model)
    kw = engine._cache_kwarg(model)
    neg = torch.finfo(torch.float32).min
    torch.manual_seed(0)

    def kv(rows, length):
        return [(torch.randn(rows, kvh, length, dim), torch.randn(rows, kvh, length, dim)) for _ in range(n_layers)]

    def step(rows, own, groups):
        cache = engine._cache_over(kv(rows, own + reps + 2), own)
        ids, pos = torch.randint(0, 49000, (rows, 1)), torch.full((rows, 1), own + 600)

        def go():
            n = cache.layers[0].n
            model(input_ids=ids, attention_mask=torch.zeros(rows, 1, 1, n + 1), position_ids=pos, use_cache=True,
                  logits_to_keep=1, shared_prefix=cascade.SharedPrefix(groups), **{kw: cache})
        return timed(go, reps)

    out = []
    with torch.no_grad(), packed_linears(model), cascade.activated(model):
        for rows, carriers, own in ((8, 6, 400), (16, 6, 300)):
            store = [kv(1, 600) for _ in range(carriers)]
            members = [[r for r in range(rows) if r % carriers == c] for c in range(carriers)]
            separate = [(torch.tensor(m), s) for m, s in zip(members, store)]
            stacked = [cascade.Stacked.build(members, store, neg, "cpu")]
            full = step(rows, own + 600, [])
            a, b = step(rows, own, separate), step(rows, own, stacked)
            label = f"decode step, {rows} rows, {carriers} carriers of 600 + {own} own positions"
            out.append({"kernel": label + " (prefix in every row -> one call per carrier)", "before_ms": round(full, 1),
                        "after_ms": round(a, 1), "speedup": round(full / a, 2)})
            out.append({"kernel": label + " (prefix in every row -> small carriers stacked)", "before_ms": round(full, 1),
                        "after_ms": round(b, 1), "speedup": round(full / b, 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = linear_rows(a.reps) + decode_rows(a.reps)
    emit("generation engine kernels vs what they replaced (ms, median)", rows,
         ["kernel", "before_ms", "after_ms", "speedup"], a.json)


if __name__ == "__main__":
    main()
