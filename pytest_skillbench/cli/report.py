"""``skillbench report RUN...``: every statistic recomputed from stored runs (no model)."""

from __future__ import annotations

import json
from pathlib import Path

from ..plots import make_plots
from ..report.offline import report_from_runs
from ..report.terminal import render, render_per_skill


def _cmd_report(args) -> int:
    report, _ = report_from_runs(args.runs, seed=args.seed, resamples=args.resamples,
                                        sft_pairs=args.sft_pair, allow_path_mismatch=args.allow_path_mismatch)
    for line in render(report):
        print(line)
    if args.per_skill:
        for line in render_per_skill(report):
            print(line)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        print(f"report written to {out}")
    if args.plots:
        series = [s.strip() for s in args.series.split(",")] if args.series else None
        files = make_plots(report, args.plots, series=series)
        print(f"{len(files)} plot(s) written to {args.plots}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="recompute every statistic from stored runs (no model needed)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or episodes JSONL files")
    p.add_argument("--json", default=None, metavar="PATH", help="write the JSON report here")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG plots to this directory")
    p.add_argument("--series", default=None, metavar="A,B,C",
                   help="order of the students in the Δ-across-a-series plot (default: run order)")
    p.add_argument("--sft-pair", action="append", default=[], metavar="STUDENT=BASE",
                   help="report the SFT contribution of STUDENT over BASE (repeatable)")
    p.add_argument("--allow-path-mismatch", action="store_true",
                   help="compare students whose inference paths differ, flagging every affected line")
    p.add_argument("--per-skill", action="store_true", help="also print the per-skill tables")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the run's)")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default: the run's)")
    p.set_defaults(func=_cmd_report)


