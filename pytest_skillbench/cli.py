"""The ``skillbench`` command: validate | report | agree | rejudge | import | baseline | train | ...

Every subcommand prints a ``SkillbenchError`` as one line on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import SkillbenchError

# Each module here exposes ``register(subparsers)`` adding its subcommands (kept out of this file so
# every concept keeps its command next to its code).
COMMAND_MODULES: list[str] = ["analysis", "runimport", "training_cli", "trajectory", "probe",
                               "judges.pairwise", "rejudge", "agree", "baseline", "report.html"]


def _cmd_validate(args) -> int:
    from .bench.validate import validate

    paths = args.paths or ["bundled"]
    status = 0
    results = []
    for p in paths:
        res = validate(p, args.catalog)
        res["bench"] = p
        results.append(res)
        if res["errors"]:
            status = 1
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return status
    for res in results:
        print(f"bench: {res['bench']}  skills: {res['skills']}")
        for split, n in res["splits"].items():
            print(f"  {split}: {n} tasks")
        for qt, n in res["query_types"].items():
            print(f"  {qt}: {n}")
        if res["yes_share"] is not None:
            print(f"  YES_NO gold share 'yes': {res['yes_share']:.2f}")
        if "demos" in res:
            print(f"  demos: {res['demos']['rows']} rows {res['demos']['by_condition']}")
        if args.per_skill:
            for skill, counts in res.get("per_skill", {}).items():
                print(f"    {skill}: {counts}")
        for err in res["errors"]:
            print(f"ERROR {err}")
        print("OK" if not res["errors"] else f"{len(res['errors'])} error(s)")
    return status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skillbench", description="pytest-skillbench command line")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a bench (default: the bundled one) and print counts")
    v.add_argument("paths", nargs="*", help="bench directories or task files (default: bundled)")
    v.add_argument("--catalog", default=None, help="catalog directory or reference skills.json")
    v.add_argument("--json", action="store_true", help="print the summary as JSON")
    v.add_argument("--per-skill", action="store_true", help="also print counts per skill")
    v.set_defaults(func=_cmd_validate)
    for module in COMMAND_MODULES:
        import importlib

        importlib.import_module(f"pytest_skillbench.{module}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # a command that sets ``passthrough`` (e.g. ``trajectory``) receives the options it does not know
    # (pytest / plugin options) as a second argument; every other command rejects them
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "passthrough", False):
            return int(args.func(args, extra) or 0)
        return int(args.func(args) or 0)
    except SkillbenchError as exc:
        print(f"skillbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
