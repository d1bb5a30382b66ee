"""Served student scale-out: pytest-xdist workers against an OpenAI-compatible server answering in 200 ms.

    python benchmarks/parallel_openai.py [--delay 0.2] [--adapters 2] [--skills 40] [--workers 4] [--json]

A loopback chat-completions server (tests/loopback.py, one thread per request) answers every prompt after
``--delay`` seconds with a deterministic answer per (served model, prompt): like one vLLM instance serving
``--adapters`` LoRA adapters of one base (each a student with ``adapter = "v2.K"``), every student on the
whole holdout in both conditions (2 x 400 = 800 items by default). The same command runs with ``-n 0`` and ``-n WORKERS``,
each with a fresh generation cache, and the student's per-process ``concurrency = 1`` so the gain measured
is the workers' alone (a fourth row shows ``-n 0`` with ``concurrency = 8`` for comparison: in-process
threads give the same kind of gain). Pass: ``-n WORKERS`` at least 3x faster than ``-n 0``, identical JSON
reports (apart from times and the run directory), and exactly one request per item in every run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
from _common import emit
from chat_students import BenchStudent
from loopback import Loopback

from pytest_skillbench.bench import load_bench


def normalised(path: Path) -> dict:
    rep = json.loads(path.read_text())
    for key in ("started", "finished", "run_dir"):
        rep["run"].pop(key, None)
    for st in (rep["run"].get("students") or {}).values():  # the concurrency row differs on purpose
        (st.get("spec") or {}).pop("concurrency", None)
        (st.get("path") or {}).pop("concurrency", None)
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay", type=float, default=0.2, help="server answer time in seconds (default 0.2)")
    ap.add_argument("--adapters", type=int, default=2, help="served adapters = students (default 2)")
    ap.add_argument("--skills", type=int, default=40, help="skills to run (10 items each; default all 40)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tasks = load_bench("bundled").split("holdout")
    skills = sorted({t.skill for t in tasks})[: args.skills]
    n_items = 2 * args.adapters * sum(t.skill in skills for t in tasks)
    names = [f"v2.{k}" for k in range(args.adapters)]
    select = " or ".join(s.replace("-", "_") for s in skills)
    rows, reports = [], {}
    with tempfile.TemporaryDirectory(prefix="sb-parallel-") as tmp, Loopback(BenchStudent(tasks),
                                                                             delay=args.delay) as lb:
        root = Path(tmp)
        runs = [("-n 0", "0", 1), (f"-n {args.workers}", str(args.workers), 1), ("-n 0", "0", 8)]
        for label, n, conc in runs:
            proj = root / f"p{n}-{conc}"
            proj.mkdir()
            (proj / "pyproject.toml").write_text("".join(
                f'[tool.skillbench.students."{name}"]\nbackend = "openai"\nbase_url = "{lb.url}/v1"\n'
                f'model = "base-model"\nadapter = "{name}"\nconcurrency = {conc}\nmax_retries = 0\n\n'
                for name in names))
            out = proj / "report.json"
            cmd = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:hypothesispytest", "-q",
                   *[a for name in names for a in ("--student", name)], "-n", n,
                   f"--skillbench-cache={proj / 'cache'}",
                   f"--skillbench-json={out}"]
            if len(skills) < 40:
                cmd += ["-k", select]
            lb.reset()
            t0 = time.perf_counter()
            m0 = time.monotonic()
            res = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            got = sorted(r.received for r in lb.log)
            span = (got[-1] - got[0] + args.delay) if got else float("nan")
            if res.returncode not in (0, 1):
                print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
                return 2
            reports[(n, conc)] = normalised(out)
            rows.append({"run": label, "workers": int(n), "concurrency": conc, "items": n_items, "wall_s": wall,
                         "items_per_s": n_items / wall, "requests": lb.calls,
                         # start-up (interpreters, imports, collection) until the first request, the span in which
                         # requests were made, and the mean number of requests in flight during that span
                         "first_request_s": (got[0] - m0) if got else None, "request_span_s": span,
                         "mean_in_flight": len(got) * args.delay / span if got else None})
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup_vs_n0_c1"] = base / r["wall_s"]
    same = all(rep == reports[("0", 1)] for rep in reports.values())
    one_each = all(r["requests"] == n_items for r in rows)
    speedup = rows[1]["speedup_vs_n0_c1"]
    ok = speedup >= 3.0 and same and one_each
    emit(f"{args.adapters} served adapter(s) (openai backend) vs a loopback server answering in "
         f"{args.delay * 1000:.0f} ms", rows,
         ["run", "workers", "concurrency", "items", "wall_s", "items_per_s", "requests", "first_request_s",
          "request_span_s", "mean_in_flight", "speedup_vs_n0_c1"],
         args.json, extra={"identical_reports": same, "one_request_per_item": one_each,
                           f"speedup_n{args.workers}": round(speedup, 2),
                           "result": "PASS" if ok else "FAIL (need >= 3x, identical reports, one request per item)"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
