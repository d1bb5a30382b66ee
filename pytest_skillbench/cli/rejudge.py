"""``skillbench rejudge RUN``: judge a stored run's error / unscored episodes again (``rejudge.rejudge_run``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SkillbenchError
from ..rejudge import rejudge_run
from ..report.terminal import render
from ..settings import JUDGE_BACKENDS, JUDGES, Settings


def _settings_for(manifest: dict, args):
    judge = manifest.get("judge") or {}
    s = Settings()
    s.judge = args.judge or judge.get("mode") or "deterministic"
    if s.judge not in JUDGES:
        raise SkillbenchError(f"judge mode {s.judge!r} is not one of {', '.join(JUDGES)}")
    stored_backend = judge.get("backend") if judge.get("backend") in JUDGE_BACKENDS else None
    s.judge_backend = args.judge_backend or stored_backend or "anthropic"
    same = s.judge_backend == stored_backend
    s.judge_model = args.judge_model or (judge.get("model") if same else None)
    s.judge_base_url = args.judge_base_url or (judge.get("base_url") if same and s.judge_backend == "openai" else None)
    s.judge_api_key_env = args.judge_api_key_env or (judge.get("api_key_env") if same else None)
    for name in ("judge_concurrency", "judge_timeout", "judge_max_attempts", "judge_backoff", "judge_max_tokens"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if args.cache:
        s.cache = args.cache
    return s


def _cmd_rejudge(args) -> int:
    run_dir = Path(args.run)
    man_file = run_dir / "manifest.json"
    manifest = json.loads(man_file.read_text(encoding="utf-8")) if man_file.is_file() else {}
    settings = _settings_for(manifest, args)
    summary, report = rejudge_run(run_dir, settings, bench=args.bench, catalog=args.catalog,
                                  write=(lambda s: None) if args.json else print)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    label = summary["judge"].get("backend")
    if summary["judge"].get("model"):
        label = f"{label}:{summary['judge']['model']}"
    print(f"re-judged {summary['episodes']} episode(s) of {run_dir} with --judge {summary['judge']['mode']} "
          f"({label}): before {summary['before']}, after {summary['after']}")
    if summary["judge"]["mode"] == "deterministic" and summary["episodes"]:
        print("note: the deterministic judge reads the same ANSWER lines again, so nothing it left unscored can "
              "change; to score them, re-judge with an LLM: --judge llm-only --judge-backend anthropic|openai "
              "(or --judge deterministic-mixed for FREE_FORM only)")
    if summary["not_rejudged_generation_errors"]:
        print(f"note: {summary['not_rejudged_generation_errors']} episode(s) have no stored response (generation "
              "error) and were not re-judged; re-run the session to regenerate them")
    for line in render(report):
        print(line)
    print(f"rewrote {run_dir / 'episodes.jsonl'} and {run_dir / 'report.json'}")
    return 0


def add_judge_arguments(p, *, with_mode: bool = True) -> None:
    if with_mode:
        p.add_argument("--judge", choices=JUDGES, default=None, help="judge mode (default: the run's)")
    p.add_argument("--judge-backend", choices=JUDGE_BACKENDS, default=None, help="default: the run's")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--judge-concurrency", type=int, default=None)
    p.add_argument("--judge-base-url", default=None)
    p.add_argument("--judge-api-key-env", default=None, metavar="VAR")
    p.add_argument("--judge-timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--judge-max-attempts", type=int, default=None)
    p.add_argument("--judge-backoff", type=float, default=None, metavar="SECONDS")
    p.add_argument("--judge-max-tokens", type=int, default=None, metavar="N")


def register(sub) -> None:
    p = sub.add_parser("rejudge", help="re-judge the error / unscored episodes of a run from stored responses")
    p.add_argument("run", metavar="RUN", help="a run directory (episodes.jsonl + manifest.json)")
    add_judge_arguments(p)
    p.add_argument("--bench", default=None, help="the run's bench (default: the one in its manifest)")
    p.add_argument("--catalog", default=None)
    p.add_argument("--cache", "--skillbench-cache", dest="cache", default=None, metavar="DIR",
                   help="judgment cache (default $SKILLBENCH_CACHE or ~/.cache/pytest-skillbench)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_rejudge)


