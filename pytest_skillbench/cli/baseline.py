"""``skillbench baseline save | show``: committed baselines for ``--gate-against``."""

from __future__ import annotations

from ..baseline import FORMAT, read_baseline, save_baseline
from ..episodes import Status


def _cmd_save(args) -> int:
    data = save_baseline(args.run, args.out, args.student or None)
    n_err = sum(i["status"] == Status.ERROR for i in data["items"])
    for s, conds in data["summary"].items():
        parts = [f"{c} {v['passed']}/{v['scored']}" + (f" ({v['pass_rate']:.1%})" if v["pass_rate"] is not None
                                                       else "") for c, v in conds.items()]
        print(f"{s}: " + ", ".join(parts))
    print(f"baseline written to {args.out}: {len(data['items'])} item verdict(s) of {', '.join(data['students'])}")
    if n_err:
        print(f"warning: {n_err} item(s) are in error (infrastructure) and will not be paired; consider re-running "
              "the reference first")
    return 0


def _cmd_show(args) -> int:
    data = read_baseline(args.path)
    print(f"{args.path}: {FORMAT}, created {data.get('created')}, from {data.get('source')}")
    man = data.get("manifest") or {}
    print(f"  bench {man.get('bench')} ({man.get('split')}, hash {man.get('bench_hash')}), "
          f"judge {(man.get('judge') or {}).get('mode')}")
    for s, conds in (data.get("summary") or {}).items():
        for c, v in conds.items():
            rate = "n/a" if v["pass_rate"] is None else f"{v['pass_rate']:.1%}"
            print(f"  {s:<24} {c:<9} n={v['n']:<4} passed {v['passed']}/{v['scored']} = {rate}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("baseline", help="save / show a committed baseline (item-level verdicts + run manifest)")
    bsub = p.add_subparsers(dest="baseline_command", required=True)
    s = bsub.add_parser("save", help="store a run's item-level verdicts as a baseline file for --gate-against")
    s.add_argument("run", metavar="RUN", help="a run directory (.skillbench/runs/...) or an episodes JSONL")
    s.add_argument("--out", required=True, metavar="PATH", help="where to write it, e.g. baselines/v2.0.json")
    s.add_argument("--student", action="append", default=[], metavar="NAME",
                   help="keep only this student (repeatable; default: every student of the run)")
    s.set_defaults(func=_cmd_save)
    sh = bsub.add_parser("show", help="print a baseline file's summary")
    sh.add_argument("path", metavar="PATH")
    sh.set_defaults(func=_cmd_show)
