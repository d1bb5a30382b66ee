"""``skillbench probe STUDENT... | RUN_DIR``: run the generality probe, or print a stored run's probe table."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..errors import SkillbenchError
from ..runs.store import is_run_dir, read_run
from ..studies.probe import probe_section, render


def _cmd_probe(args, extra: list[str]) -> int:
    """``skillbench probe STUDENT...``: pytest with --probe, or the table of a stored run."""
    if len(args.targets) == 1 and is_run_dir(Path(args.targets[0])):
        run = read_run(args.targets[0])
        sec = probe_section(run.episodes, run.manifest)
        if not sec:
            raise SkillbenchError("no probe episodes in this run", path=run.source)
        for line in render({"probe": sec}):
            print(line)
        return 0
    argv = [a for t in args.targets for a in ("--student", t)] + ["--probe", args.probe, "-q",
                                                                    "-p", "no:cacheprovider"] + list(extra)
    if not any(a.startswith("--rootdir") for a in extra):  # existing option paths must not move the rootdir
        argv += ["--rootdir", str(Path.cwd())]
    code = int(pytest.main(argv))
    return 0 if code in (0, 1) else code


def register(sub) -> None:
    p = sub.add_parser("probe", help="run the generality probe on students (plus their bases), or print the "
                                     "probe table of a stored run",
                       description="STUDENT...: runs pytest --student STUDENT --probe PROBE (each student's base "
                                   "is added); further pytest / skillbench options pass through. A run "
                                   "directory: prints its probe table.")
    p.add_argument("targets", nargs="+", metavar="STUDENT|RUN_DIR")
    p.add_argument("--probe", default="generality", help="generality (bundled) or a probe JSONL")
    p.set_defaults(func=_cmd_probe, passthrough=True)
