"""The ``skillbench`` command: validate | report | agree | rejudge | import | baseline | train | ...

Every command lives in this package, one module per command group, each exposing ``register(subparsers)``;
the modules they call never import the command line. Every subcommand prints a ``SkillbenchError`` as one
line on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import SkillbenchError
from . import (
    agree,
    baseline,
    importer,
    pairwise,
    probe,
    rejudge,
    report,
    training,
    trajectory,
    validate,
    view,
)

# The command groups in the order their subcommands are listed by ``skillbench --help``.
COMMAND_MODULES = (validate, report, importer, training, trajectory, probe, pairwise, rejudge, agree, baseline,
                   view)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skillbench", description="pytest-skillbench command line")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
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
