"""``skillbench agree RUN_A RUN_B``: agreement between two judgings of the same responses."""

from __future__ import annotations

import json
from pathlib import Path

from ..agree import agree, render
from ..episodes import Episode
from ..errors import SkillbenchError
from ..runs.store import read_run


def _read(path: str) -> list[Episode]:
    return read_run(path).episodes


def _cmd_agree(args) -> int:
    eps_a, eps_b = _read(args.run_a), _read(args.run_b)
    if not eps_a or not eps_b:
        raise SkillbenchError("a run holds no episodes", path=args.run_a if not eps_a else args.run_b)
    res = agree(eps_a, eps_b)
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
    else:
        for line in render(res, Path(args.run_a).name, Path(args.run_b).name):
            print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("agree", help="agreement, Cohen's kappa and Δ shift between two judgings of the same responses")
    p.add_argument("run_a", metavar="RUN_A", help="run directory or episodes JSONL (judge A)")
    p.add_argument("run_b", metavar="RUN_B", help="run directory or episodes JSONL (judge B)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_agree)
