"""A real LoRA run on this machine, then pre- vs post-SFT evaluation through the plugin.

    python benchmarks/train_smollm2_lora.py [--out benchmarks/out/smollm2-lora] [--max-steps N]
        [--max-new-tokens 256] [-k EXPR] [--train-arg=--lr=1e-4 ...] [--skip-train]

1. ``python -m pytest_skillbench.training --base smollm2-135m --out OUT`` on the bundled demo corpus
   (120 rows) with the reference defaults (LoRA r 8 / alpha 16 / dropout 0.05 all-linear, 3 epochs, lr 2e-4 cosine, warmup 0.03,
   effective batch 8), on CPU in fp32.
2. ``pytest --student smollm2-135m --student smollm2-lora --sft-pair smollm2-lora=smollm2-135m`` on the holdout
   (both conditions), from a scratch project whose pyproject.toml registers the adapter, so the report has
   the SFT-contribution table (adapter minus base, per condition, paired).

It prints the training summary (steps, seconds per step, first/last loss, wall time), the evaluation wall
time and the plugin's report, and writes OUT/benchmark.md (a block to paste into README) and
OUT/benchmark.json. Smoke check: ``--max-steps 2 -k modus_ponens --max-new-tokens 16``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine

NAME = "smollm2-lora"


def run(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float, str]:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out = []
        for line in proc.stdout:  # type: ignore[union-attr]
            fh.write(line)
            out.append(line)
            if line.startswith(("[train]", "[skillbench]")) or "error" in line.lower():
                print("  " + line.rstrip(), flush=True)
        rc = proc.wait()
    return rc, time.perf_counter() - t0, "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "smollm2-lora"))
    ap.add_argument("--max-steps", type=int, default=None, help="stop training after N steps (smoke check)")
    ap.add_argument("--train-arg", action="append", default=[], 
                    help="extra argument for python -m pytest_skillbench.training")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression (subset of the holdout)")
    ap.add_argument("--skip-train", action="store_true", help="evaluate an existing OUT")
    a = ap.parse_args()

    out = Path(a.out).resolve()
    work = out.parent / f"{out.name}-eval"
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    result: dict = {"machine": machine(), "out": str(out)}

    if not a.skip_train:
        cmd = [py, "-m", "pytest_skillbench.training", "--base", "smollm2-135m", "--out", str(out)]
        if a.max_steps:
            cmd += ["--max-steps", str(a.max_steps)]
        cmd += a.train_arg
        rc, secs, _ = run(cmd, REPO, work / "train.log")
        if rc != 0:
            print(f"training failed (rc {rc}); see {work / 'train.log'}")
            return rc
        result["train_command"] = " ".join(["python", "-m", "pytest_skillbench.training"] + cmd[3:])
        result["train_wall_seconds"] = secs
    manifest = json.loads((out / "training_manifest.json").read_text())
    steps = manifest.get("steps") or []
    result["training"] = {k: manifest.get(k) for k in ("global_steps", "train_seconds", "seconds_per_step",
                                                       "train_loss", "parameters", "loss_mask", "hyperparameters")}
    result["training"]["first_loss"] = steps[0]["loss"] if steps else None
    result["training"]["last_loss"] = steps[-1]["loss"] if steps else None

    (work / "pyproject.toml").write_text(
        f'[tool.skillbench]\nmax-new-tokens = {a.max_new_tokens}\n\n[tool.skillbench.students.{NAME}]\n'
        f'base = "smollm2-135m"\nadapter = "{out.as_posix()}"\nbase_student = "smollm2-135m"\n')
    report = work / "report.json"
    cmd = [py, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "--student", "smollm2-135m",
           "--student", NAME, "--sft-pair", f"{NAME}=smollm2-135m", "--max-new-tokens", str(a.max_new_tokens),
           "--batch-size", str(a.batch_size), "--skillbench-json", str(report),
           "--skillbench-run-dir", str(work / "run")]
    if a.keyword:
        cmd += ["-k", a.keyword]
    rc, secs, text = run(cmd, work, work / "eval.log")
    result["eval_command"] = " ".join(["pytest"] + cmd[3:])
    result["eval_wall_seconds"] = secs
    if not report.is_file():
        print(f"evaluation produced no report (rc {rc}); see {work / 'eval.log'}")
        return rc or 1
    section = text.split("= skillbench =", 1)[-1] if "= skillbench =" in text else text[-4000:]
    section = "\n".join(line for line in section.splitlines() if not line.startswith("=")).strip()
    result["report_terminal"] = section
    (out / "benchmark.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    t = result["training"]
    md = [(f"Machine: {result['machine'].get('cpu')}, {result['machine'].get('cores')} cores, "
           f"torch {result['machine'].get('torch')}, CUDA {result['machine'].get('cuda')}."), "",
          "```bash", result.get("train_command", "(training skipped)"), result["eval_command"], "```", "",
          (f"Training: {t['global_steps']} steps in {t['train_seconds']:.0f} s "
           f"({t['seconds_per_step'] or 0:.1f} s/step), loss {t['first_loss']:.3f} -> {t['last_loss']:.3f}; "
           f"{t['parameters']['trainable']:,} trainable parameters. Evaluation: {secs / 60:.1f} min."), "",
          "```", section, "```"]
    (out / "benchmark.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwritten: {out / 'benchmark.md'}, {out / 'benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
