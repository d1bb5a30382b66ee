"""``skillbench view RUN_DIR``: the self-contained HTML run viewer of a stored run."""

from __future__ import annotations

import webbrowser

from ..report.html import write_run_html


def _cmd_view(args) -> int:
    path = write_run_html(args.run, args.out)
    print(f"run viewer written to {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def register(sub) -> None:
    p = sub.add_parser("view", help="build the self-contained HTML run viewer of a stored run (no model, no judge)")
    p.add_argument("run", metavar="RUN_DIR", help="a run directory (report.json + episodes.jsonl)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write the page (default RUN_DIR/report.html)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=_cmd_view)
