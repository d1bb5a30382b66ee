"""Runs lm-evaluation-harness's hf model (generate_until) on prompts given as JSON; prints one JSON line.

Executed by generation_throughput.py with the lm-eval venv's interpreter, so lm-eval lives in its own env.
"""

import json
import statistics
import sys
import time

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
import lm_eval

cfg = json.load(open(sys.argv[1]))
lm = HFLM(pretrained=cfg["model"], batch_size=int(cfg["batch_size"]), device="cpu", dtype="float32")
gen_kwargs = {"until": cfg["until"], "max_gen_toks": cfg["max_new_tokens"], "do_sample": False,
              "repetition_penalty": 1.05}
reqs = [Instance(request_type="generate_until", doc={}, arguments=(p, dict(gen_kwargs)), idx=i)
        for i, p in enumerate(cfg["prompts"])]
lm.generate_until(reqs[:2], disable_tqdm=True)  # warm up
walls = []
for _ in range(int(cfg["reps"])):
    t0 = time.perf_counter()
    texts = lm.generate_until(reqs, disable_tqdm=True)
    walls.append(time.perf_counter() - t0)
print(json.dumps({"wall_s": statistics.median(walls), "texts": texts, "batch_size": cfg["batch_size"],
                  "version": getattr(lm_eval, "__version__", "?")}))
