"""``skillbench pairwise RUN`` / ``skillbench rubric RUN``: judge a stored run's answers with an LLM judge."""

from __future__ import annotations

import json
from pathlib import Path

from ..bench import load_bench
from ..cache import Store
from ..errors import SkillbenchError
from ..judges.runner import make_backend
from ..lineage import base_map
from ..runs.store import read_run
from ..settings import build_settings
from ..students.embedded import default_cache_dir
from ..studies.pairwise import PromptInfo, pairwise_against_base, prompt_index, render, rubric_scores
from ..studies.probe import load_probe


def make_judge(settings, *, cache_dir=None, pool=None, root=None):
    """The LLM judge backend of the settings (``judges.runner.make_backend``)."""
    return make_backend(settings, cache_dir=cache_dir, pool=pool, root=root)


def _load_prompts(manifest: dict, episodes) -> dict[str, PromptInfo]:
    tasks = []
    bench = manifest.get("bench") or "bundled"
    try:
        b = load_bench(bench, None)
        tasks = list(b.split(manifest.get("split") or "holdout"))
    except SkillbenchError:
        tasks = []
    probe_items = []
    probe = manifest.get("probe")
    if probe or any(e.condition == "probe" for e in episodes):
        try:
            probe_items = load_probe((probe or {}).get("source") if isinstance(probe, dict) else probe)
        except SkillbenchError:
            probe_items = []
    return prompt_index(tasks, probe_items)


def _cmd(args, kind: str) -> int:
    run = read_run(args.run)
    cli = {"judge_backend": args.judge_backend, "judge_model": args.judge_model,
           "judge_base_url": args.judge_base_url, "judge_concurrency": args.judge_concurrency,
           "judge_api_key_env": args.judge_api_key_env, "cache": args.cache}
    settings = build_settings(cli, Path.cwd())
    cache = Path(settings.cache) if settings.cache else default_cache_dir()
    backend = make_judge(settings, cache_dir=cache, root=Path.cwd())
    store = Store(cache, "judgments")
    prompts = _load_prompts(run.manifest, run.episodes)
    eps = run.episodes
    if kind == "rubric" and args.student:
        eps = [e for e in eps if e.student in args.student]
    if kind == "pairwise":
        bases = dict(pair.split("=", 1) for pair in args.pair) if args.pair else \
            base_map(sorted({e.student for e in eps}), run.manifest)
        if args.student:
            bases = {s: b for s, b in bases.items() if s in args.student}
        if not bases:
            raise SkillbenchError("no student with a base in this run (give --pair STUDENT=BASE)", path=run.source)
        result = pairwise_against_base(eps, bases, prompts, backend, store=store, write=print)
        report = {"pairwise": result}
    else:
        result = rubric_scores(eps, prompts, backend, store=store, write=print)
        report = {"rubric": result}
    for line in render(report):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


def register(sub) -> None:
    for kind, help_ in (("pairwise", "blind pairwise win-rate of students against their bases (LLM judge)"),
                        ("rubric", "pointwise 1-5 rubric scores per student and category (LLM judge)")):
        p = sub.add_parser(kind, help=help_)
        p.add_argument("run", metavar="RUN_DIR", help="a run directory or episodes JSONL")
        p.add_argument("--student", action="append", default=[], help="only these students (repeatable)")
        if kind == "pairwise":
            p.add_argument("--pair", action="append", default=[], metavar="STUDENT=BASE",
                           help="compare STUDENT with BASE (default: base_student / --sft-pair / NAME@base)")
        p.add_argument("--judge-backend", default=None, help="anthropic | openai | hf")
        p.add_argument("--judge-model", default=None)
        p.add_argument("--judge-base-url", default=None)
        p.add_argument("--judge-api-key-env", default=None, help="environment variable holding the API key")
        p.add_argument("--judge-concurrency", type=int, default=None)
        p.add_argument("--cache", default=None, help="skillbench cache directory (judgments are cached)")
        p.add_argument("--json", default=None, help="write the section as JSON here")
        p.set_defaults(func=lambda a, k=kind: _cmd(a, k))
