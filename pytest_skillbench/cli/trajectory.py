"""``skillbench trajectory TRAIN_DIR | RUN_DIR``: evaluate every checkpoint of a training run, or recompute
the trajectory of a stored run."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import pytest

from ..errors import SkillbenchError
from ..report.offline import report_from_runs
from ..runs.store import is_run_dir
from ..studies.trajectory import render_trajectory, write_plots


def _cmd_trajectory(args, extra: list[str]) -> int:
    target = Path(args.target)
    if is_run_dir(target):  # recompute from a stored run: no model
        if extra:
            raise SkillbenchError(f"unrecognized arguments for a stored run: {' '.join(extra)}")
        report, _ = report_from_runs([target])
        outdir = Path(args.plot_dir) if args.plot_dir else (target if target.is_dir() else target.parent)
        write_plots(report, outdir)
        if not report.get("trajectory"):
            raise SkillbenchError("no checkpoint students (NAME@base / NAME@checkpoint-N) in this run", path=target)
        for line in render_trajectory(report):
            print(line)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        return 0
    run_dir = Path(args.run_dir or Path(".skillbench") / "runs" /
                   f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-trajectory").resolve()
    argv = ["--student", f"{args.target}@all-checkpoints", "--skillbench-run-dir", str(run_dir), "-q",
            "-p", "no:cacheprovider"] + (["--skillbench-json", args.json] if args.json else []) + list(extra)
    if not any(a.startswith("--rootdir") for a in extra):  # existing option paths must not move the rootdir
        argv += ["--rootdir", str(Path.cwd())]
    code = pytest.main(argv)
    if int(code) not in (0, 1):
        return int(code)
    rep = run_dir / "report.json"
    if rep.is_file():
        report = json.loads(rep.read_text(encoding="utf-8"))
        if args.plot_dir:
            write_plots(report, args.plot_dir)
            for family, entry in report.get("trajectory", {}).items():
                print(f"trajectory plot {family}: {entry['plot']}")
    print(f"run directory: {run_dir}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("trajectory", help="evaluate every checkpoint of a training run (base = step 0); or "
                                          "recompute the trajectory of a stored run",
                       description="TRAIN_DIR (a training output directory or a registered student): runs "
                                   "pytest --student TRAIN_DIR@all-checkpoints; any further pytest / skillbench "
                                   "options (--max-new-tokens, --condition, -k, ...) are passed through. "
                                   "A run directory: the trajectory is recomputed from its episodes.")
    p.add_argument("target", metavar="TRAIN_DIR|RUN_DIR")
    p.add_argument("--plot-dir", default=None, help="also write the trajectory PNG(s) here")
    p.add_argument("--json", default=None, help="write the JSON report here")
    p.add_argument("--run-dir", default=None, help="run directory (default .skillbench/runs/<time>-trajectory)")
    p.set_defaults(func=_cmd_trajectory, passthrough=True)
