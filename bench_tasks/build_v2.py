"""Merge the bench v2 parts (``v2_parts/G*.{holdout,train,demos}.jsonl``) into the bundled files.

Not packaged: a maintainer's script, run from the repo root once every group's parts are written::

    python bench_tasks/build_v2.py                 # writes bench_tasks/{holdout,train,demos}.jsonl
    python bench_tasks/build_v2.py --out /tmp/v2   # writes the merge elsewhere (e.g. to lint a partial v2)
    python bench_tasks/build_v2.py --check         # only report what the parts hold; writes nothing

Tasks are sorted by skill, then query type (YES_NO, SINGLE_WORD, RANKING, FREE_FORM), then the gold answer
("yes" before "no") and the uid, so the merged files do not depend on which group wrote what. Demos follow
their task's order (curated before baseline). Refuses to write the bundled files unless every group has
40 holdout, 40 train and 24 demo rows (``--partial`` writes whatever exists, only with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = HERE / "v2_parts"
GROUPS = ("G1", "G2", "G3", "G4", "G5")
EXPECTED_ROWS = {"holdout": 40, "train": 40, "demos": 24}
QT_ORDER = {"YES_NO": 0, "SINGLE_WORD": 1, "RANKING": 2, "FREE_FORM": 3}


def read_rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{n}: malformed JSON: {exc.msg}") from None
    return rows


def task_sort_key(t: dict) -> tuple:
    return (t.get("skill", ""), QT_ORDER.get(t.get("query_type"), 9),
            0 if str(t.get("answer", "")).lower() == "yes" else 1, t.get("task_uid", ""))


def collect(parts: Path = PARTS) -> tuple[dict[str, list[dict]], list[str]]:
    """The rows of every part by kind, and one line per group/kind whose row count is off."""
    merged: dict[str, list[dict]] = {kind: [] for kind in EXPECTED_ROWS}
    problems = []
    for group in GROUPS:
        for kind, want in EXPECTED_ROWS.items():
            path = parts / f"{group}.{kind}.jsonl"
            rows = read_rows(path) if path.is_file() else []
            if len(rows) != want:
                problems.append(f"{group}.{kind}: {len(rows)} rows (want {want})")
            merged[kind] += rows
    return merged, problems


def merge(merged: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Sorted splits and demos (demos in the order of their train tasks, curated first)."""
    out = {split: sorted(merged[split], key=task_sort_key) for split in ("holdout", "train")}
    order = {t["task_uid"]: i for i, t in enumerate(out["train"])}
    out["demos"] = sorted(merged["demos"], key=lambda d: (
        order.get(d.get("metadata", {}).get("task_uid"), len(order)),
        0 if d.get("metadata", {}).get("condition") == "curated" else 1))
    return out


def write(out_dir: Path, files: dict[str, list[dict]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, rows in files.items():
        with open(out_dir / f"{kind}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=str(PARTS), help="folder of the G*.{holdout,train,demos}.jsonl parts")
    ap.add_argument("--out", default=None, help="write here instead of bench_tasks/ (the bundled files)")
    ap.add_argument("--partial", action="store_true", help="with --out: merge even if some parts are short")
    ap.add_argument("--check", action="store_true", help="only report row counts")
    args = ap.parse_args(argv)
    merged, problems = collect(Path(args.parts))
    for p in problems:
        print(f"incomplete: {p}", file=sys.stderr)
    print(" ".join(f"{k}={len(v)}" for k, v in merged.items()))
    if args.check:
        return 1 if problems else 0
    if problems and not (args.partial and args.out):
        print("refusing to write: parts incomplete (use --out DIR --partial for a trial merge)", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else HERE
    write(out, merge(merged))
    print(f"wrote {out}/holdout.jsonl, train.jsonl, demos.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
