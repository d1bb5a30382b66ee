"""Training corpora: chat rows in, chat rows out.

* ``load_chat_rows``: the JSONL a ``skillbench train --corpus`` reads (``{"messages": [...], "metadata": {...}}``
  per line, the format of the bundled ``bench_tasks/demos.jsonl``). Rows keep their line number so every
  later refusal names the row.
* ``build_corpus`` (``skillbench corpus build RUN...``): turn judged episodes (from ``skillbench trace`` or any
  plugin run on the train split) into chat rows: keep passed episodes of the chosen conditions, drop short
  responses and duplicates, optionally strip the SKILL block from the prompt, drop skills the base already
  solves, and write the rows plus a summary JSON saying what every filter removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pytest_skillbench.bench import load_bench
from pytest_skillbench.bench.demos import chat_messages
from pytest_skillbench.episodes import read_episodes
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.jsonl import parse_line, read_lines
from pytest_skillbench.prompts import messages as build_messages

SKILL_MARK = "--- SKILL:"


@dataclass
class ChatRow:
    messages: list[dict]
    path: str
    line: int
    metadata: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        uid = self.metadata.get("task_uid")
        return f"{self.path}:{self.line}" + (f" (task {uid})" if uid else "")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_chat_rows(path: str | Path) -> list[ChatRow]:
    """Parse a chat-rows JSONL. Shape errors name file:line; content checks are left to the mask check."""
    path = Path(path)
    rows = []
    for n, raw in enumerate(read_lines(path, "corpus"), 1):
        if not raw.strip():
            continue
        row = parse_line(raw, path, n)
        messages = chat_messages(row, path, n, "a chat row")
        meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        rows.append(ChatRow([{"role": m["role"], "content": m["content"]} for m in messages],
                            str(path), n, meta))
    if not rows:
        raise SkillbenchError("corpus has no rows", path=path)
    return rows


# -- corpus build ----------------------------------------------------------------------------------------
def _run_files(run: str | Path) -> tuple[Path, dict]:
    run = Path(run)
    if run.is_dir():
        eps = run / "episodes.jsonl"
        if not eps.is_file():
            raise SkillbenchError("run directory has no episodes.jsonl", path=run)
        manifest = {}
        if (run / "manifest.json").is_file():
            try:
                manifest = json.loads((run / "manifest.json").read_text())
            except json.JSONDecodeError as exc:
                raise SkillbenchError(f"malformed manifest.json: {exc.msg}", path=run / "manifest.json") from None
        return eps, manifest
    if run.is_file():
        return run, {}
    raise SkillbenchError("run not found (a run directory or an episodes JSONL)", path=run)


def ceiling_skills(run: str | Path, threshold: float = 1.0) -> dict[str, float]:
    """Skills a (base) run already solves: pass rate over scored episodes >= threshold.

    Baseline-condition episodes are used when the run has them (the base without help), else all.
    """

    eps_path, _ = _run_files(run)
    eps = read_episodes(eps_path)
    if any(e.condition == "baseline" for e in eps):
        eps = [e for e in eps if e.condition == "baseline"]
    by: dict[str, list[int]] = defaultdict(list)
    for e in eps:
        if e.verdict.scored:
            by[e.skill].append(1 if e.verdict.status == "passed" else 0)
    return {s: sum(v) / len(v) for s, v in sorted(by.items()) if v and sum(v) / len(v) >= threshold}


def _norm(text: str) -> str:
    return " ".join(text.split())


def build_corpus(runs: list[str], out: str | Path, *, conditions: tuple[str, ...] = ("curated",),
                 strip_skill_block: bool = False, drop_ceiling_run: str | None = None, ceiling: float = 1.0,
                 min_length: int = 40, dedup: bool = True, bench: str | None = None, catalog: str | None = None,
                 summary: str | Path | None = None) -> dict:

    if not runs:
        raise SkillbenchError("corpus build needs at least one run")
    dropped: Counter = Counter()
    ceil = ceiling_skills(drop_ceiling_run, ceiling) if drop_ceiling_run else {}
    benches: dict[str, object] = {}
    rows, seen = [], set()
    total = 0
    for run in runs:
        eps_path, manifest = _run_files(run)
        if manifest.get("split") == "holdout":
            raise SkillbenchError("this run is on the holdout split; training on it would leak the evaluation "
                                  "set (trace the train split: skillbench trace --split train)", path=run)
        src = bench or manifest.get("bench") or "bundled"
        if src not in benches:
            benches[src] = load_bench(src, catalog)
        b = benches[src]
        train = {t.task_uid: t for t in b.splits.get("train", [])}  # type: ignore[attr-defined]
        holdout = {t.task_uid for t in b.splits.get("holdout", [])}  # type: ignore[attr-defined]
        for ep in read_episodes(eps_path):
            total += 1
            if ep.task_uid in holdout:
                raise SkillbenchError(f"episode for task {ep.task_uid} is a holdout task; training on it would leak "
                                      "the evaluation set", path=eps_path)
            task = train.get(ep.task_uid)
            if task is None:
                dropped["not_in_train_split"] += 1
                continue
            if ep.condition not in conditions:
                dropped["other_condition"] += 1
                continue
            if ep.verdict.status != "passed":
                dropped["not_passed"] += 1
                continue
            text = (ep.response or "").strip()
            if len(text) < min_length:
                dropped["too_short"] += 1
                continue
            if ep.skill in ceil:
                dropped["ceiling_skill"] += 1
                continue
            if strip_skill_block and SKILL_MARK in text:
                dropped["skill_block_in_response"] += 1
                continue
            prompt_cond = "baseline" if strip_skill_block else ep.condition
            msgs = build_messages(task, prompt_cond, b.catalog) + [{"role": "assistant", "content": text}]  # type: ignore[attr-defined]
            key = hashlib.sha256("\x1f".join(_norm(m["content"]) for m in msgs).encode()).hexdigest()
            if dedup and key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            rows.append({"messages": msgs, "metadata": {
                "task_uid": ep.task_uid, "skill": ep.skill, "condition": ep.condition,
                "skill_block": prompt_cond == "curated", "teacher": ep.student, "source": str(run)}})
    if not rows:
        raise SkillbenchError(f"no episode survived the filters ({dict(dropped)} of {total}); nothing to write")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    by_skill: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_skill[r["metadata"]["skill"]][r["metadata"]["condition"]] += 1
    info = {"out": str(out), "sha256": file_sha256(out), "rows": len(rows), "episodes_read": total,
            "runs": [str(r) for r in runs],
            "filters": {"conditions": list(conditions), "strip_skill_block": strip_skill_block,
                        "min_length": min_length, "dedup": dedup, "drop_ceiling_skills": drop_ceiling_run,
                        "ceiling": ceiling if drop_ceiling_run else None},
            "ceiling_skills": ceil, "dropped": dict(sorted(dropped.items())),
            "by_condition": dict(Counter(r["metadata"]["condition"] for r in rows)),
            "by_skill": {s: dict(c) for s, c in sorted(by_skill.items())}}
    summary = Path(summary) if summary else out.with_name(out.stem + ".summary.json")
    summary.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info["summary"] = str(summary)
    return info


# -- command line ------------------------------------------------------------------------------------------
def _cmd_corpus_build(args) -> int:
    if args.mixed:
        conditions = ("baseline", "curated")
    else:
        conditions = tuple(c for c in ("baseline", "curated") if c in (args.condition or ["curated"]))
    info = build_corpus(args.runs, args.out, conditions=conditions, strip_skill_block=args.strip_skill_block,
                        drop_ceiling_run=args.drop_ceiling_skills, ceiling=args.ceiling, min_length=args.min_length,
                        dedup=not args.no_dedup, bench=args.bench, catalog=args.catalog, summary=args.summary)
    print(f"wrote {info['rows']} rows to {info['out']} (from {info['episodes_read']} episodes; "
          f"dropped {info['dropped'] or 'none'})")
    if info["ceiling_skills"]:
        print(f"skipped ceiling skills: {', '.join(info['ceiling_skills'])}")
    print(f"summary: {info['summary']}")
    return 0


def register(sub) -> None:
    c = sub.add_parser("corpus", help="build a training corpus from judged episodes")
    csub = c.add_subparsers(dest="corpus_command", required=True)
    b = csub.add_parser("build", help="passed episodes of chosen conditions -> chat rows JSONL + summary JSON")
    b.add_argument("runs", nargs="+", metavar="RUN", help="run directories (episodes.jsonl) or episodes JSONL files")
    b.add_argument("--out", required=True, help="chat rows JSONL to write")
    b.add_argument("--summary", default=None, help="summary JSON (default <out stem>.summary.json)")
    b.add_argument("--condition", action="append", choices=("baseline", "curated"),
                   help="conditions to keep (default curated)")
    b.add_argument("--mixed", action="store_true", help="keep baseline and curated rows")
    b.add_argument("--strip-skill-block", action="store_true",
                   help="render every prompt without the SKILL block (and drop responses that reproduce one)")
    b.add_argument("--drop-ceiling-skills", metavar="RUN", default=None,
                   help="a run of the base student: skip skills it already solves")
    b.add_argument("--ceiling", type=float, default=1.0, help="pass rate that counts as solved (default 1.0)")
    b.add_argument("--min-length", type=int, default=40, help="minimum response length in characters")
    b.add_argument("--no-dedup", action="store_true", help="keep duplicate rows")
    b.add_argument("--bench", default=None, help="bench the runs used (default: from the run manifest)")
    b.add_argument("--catalog", default=None)
    b.set_defaults(func=_cmd_corpus_build)
