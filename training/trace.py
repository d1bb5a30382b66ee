"""``skillbench trace``: a teacher answers the train split; the answers are judged and stored as a run.

The teacher is any student the plugin can resolve (``--teacher NAME``: a registered student such as an
Anthropic or OpenAI-compatible backend, ``smollm2-135m``, a model directory, ``replay:PATH``). Generation,
caching and judging go through ``SkillbenchSession`` exactly as in a pytest run, and the run directory it
writes (``episodes.jsonl``, ``manifest.json``, ``report.json``) is what ``skillbench corpus build`` reads.

Judging seam: episodes are judged by ``SkillbenchSession.judge`` under ``--judge`` (default deterministic,
the ANSWER-line judge). When the LLM judges land in ``pytest_skillbench/judges``, ``--judge llm-only`` /
``both`` work here without a change to this module.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path

from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.session import SkillbenchSession, item_name
from pytest_skillbench.settings import build_settings


def run_trace(args, log=print) -> dict:

    root = Path.cwd()
    out = Path(args.out) if args.out else (root / ".skillbench" / "traces" /
                                           f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}")
    cli = {"student": [args.teacher], "condition": args.condition or None, "split": args.split,
           "bench": args.bench, "catalog": args.catalog, "max_new_tokens": args.max_new_tokens,
           "batch_size": args.batch_size, "device": args.device, "dtype": args.dtype, "judge": args.judge,
           "cache": args.cache, "run_dir": str(out.resolve())}
    settings = build_settings(cli, root)
    if settings.split == "holdout":
        log("[trace] warning: tracing the holdout split; `skillbench corpus build` refuses holdout runs")
    session = SkillbenchSession(settings, root, run_dir=str(out.resolve()),
                                write=lambda s: (sys.stderr.write(s + "\n"), sys.stderr.flush()))
    tasks = session.tasks
    if args.skill:
        unknown = sorted(set(args.skill) - {t.skill for t in tasks})
        if unknown:
            raise SkillbenchError(f"--skill {unknown[0]!r}: no such skill in the {settings.split} split")
        tasks = [t for t in tasks if t.skill in set(args.skill)]
    if args.limit:
        tasks = tasks[:args.limit]
    session.narrow_tasks(tasks)
    specs = session.item_specs()
    if not specs:
        raise SkillbenchError("nothing to trace (no task selected)")
    session.set_selected(specs)
    log(f"[trace] teacher {args.teacher}: {len(tasks)} task(s) x {len(settings.condition)} condition(s) "
        f"on the {settings.split} split, judge {settings.judge}")
    for spec in specs:
        ep = session.run(spec, f"trace::{item_name(spec)}")
        session.record(ep)
    report = session.finish()
    for name, st in report["students"].items():
        for cond, c in st["conditions"].items():
            log(f"[trace] {name}/{cond}: {c['passed']} passed, {c['failed']} failed, {c['unscored']} unscored, "
                f"{c['errors']} error(s) of {c['n']}")
    log(f"[trace] run directory: {session.run_dir} (next: skillbench corpus build {session.run_dir} --out ...)")
    return report


def _cmd_trace(args) -> int:
    run_trace(args)
    return 0


def register(sub) -> None:
    t = sub.add_parser("trace", help="run a teacher on the train split, judge, store the episodes as a run")
    t.add_argument("--teacher", required=True, help="any student: registered name, smollm2-135m, path, replay:PATH")
    t.add_argument("--condition", action="append", choices=("baseline", "curated"),
                   help="condition(s) (default both)")
    t.add_argument("--split", choices=("train", "holdout"), default="train")
    t.add_argument("--skill", action="append", help="only these skills (repeatable)")
    t.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    t.add_argument("--bench", default=None)
    t.add_argument("--catalog", default=None)
    t.add_argument("--judge", default=None, help="deterministic (default); LLM judges once available")
    t.add_argument("--max-new-tokens", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--device", default=None)
    t.add_argument("--dtype", default=None)
    t.add_argument("--cache", default=None, help="skillbench cache (generations, converted models)")
    t.add_argument("--out", default=None, help="run directory (default .skillbench/traces/<time>-<pid>)")
    t.set_defaults(func=_cmd_trace)
