"""``skillbench import PATH``: the reference study's ``episodes.json`` / ``summary.json`` as a run directory
(``runs.importer`` converts, ``report.offline.import_run`` writes the run and its report)."""

from __future__ import annotations

from pathlib import Path

from ..report.offline import import_run
from ..report.terminal import render


def _cmd_import(args) -> int:
    src = Path(args.path)
    out = Path(args.out) if args.out else Path(".skillbench") / "runs" / f"import-{(src if src.is_dir() else src.parent).resolve().name}"
    report = import_run(src, out, bench=args.bench, mode=args.mode)
    imp = report["run"]["import"]
    print(f"imported {imp['episodes']} episode(s) of {len(report['students'])} student(s) "
          f"({imp['errors']} judge error(s), {imp['duplicates']} duplicate(s) replaced) into {out}")
    if args.report:
        for line in render(report):
            print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("import", help="convert the reference study's episodes.json/summary.json into a run")
    p.add_argument("path", help="episodes.json, or the directory holding it (and summary.json)")
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run directory to write (default .skillbench/runs/import-<dir name>)")
    p.add_argument("--bench", default="bundled", help="bench holding the tasks (query types, gold answers)")
    p.add_argument("--mode", default=None, help="import only episodes of this judging mode")
    p.add_argument("--report", action="store_true", help="print the report of the imported run")
    p.set_defaults(func=_cmd_import)
