"""``skillbench validate``: check and lint a bench."""

from __future__ import annotations

import json

from ..lint import validate


def _cmd_validate(args) -> int:
    paths = (args.paths or []) + (args.bench or [])
    paths = paths or ["bundled"]
    status = 0
    results = []
    for p in paths:
        res = validate(p, args.catalog)
        res["bench"] = p
        results.append(res)
        if res["errors"] or res["violations"]:
            status = 1
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return status
    for res in results:
        _print_validation(res, args.per_skill)
    return status


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _print_validation(res: dict, per_skill: bool) -> None:
    """The readable summary of ``skillbench validate``: counts, the lint figures, then violations/errors."""
    print(f"bench: {res['bench']} ({res.get('bench_version')})  skills: {res['skills']}")
    for split, n in res["splits"].items():
        print(f"  {split}: {n} tasks")
    for qt, n in res["query_types"].items():
        print(f"  {qt}: {n}")
    if res["yes_share"] is not None:
        print(f"  YES_NO gold share 'yes': {res['yes_share']:.2f}")
    if "demos" in res:
        print(f"  demos: {res['demos']['rows']} rows {res['demos']['by_condition']}")
    if per_skill:
        for skill, counts in res.get("per_skill", {}).items():
            print(f"    {skill}: {counts}")
    lint = res.get("lint")
    if lint:
        co, g, d = lint["card_overlap"], lint["giveaways"], lint["difficulty"]
        print("lint:")
        print(f"  card overlap: {co['tasks_over_limit']} tasks over limit ({co['tasks_with_shared_6grams']} share a "
              f"6-gram with their card, max {co['shared_6grams_max']}; content-word share max "
              f"{_fmt(co['content_share_max'])}, {co['tasks_over_content_share']} over)")
        print(f"  narrator give-aways: {g['tasks']} tasks {g['by_split']} by cue {g['by_cue']}")
        if "holdout_train" in lint:
            ht = lint["holdout_train"]
            print(f"  holdout/train: max shared 8-gram share {ht['max_shared_8gram_share']}, "
                  f"{ht['tasks_sharing_8grams']} passages sharing; nearest-neighbour cosine max "
                  f"{ht['nn_similarity_max']} mean {ht['nn_similarity_mean']}")
        if "holdout_near_duplicates" in lint:
            nd = lint["holdout_near_duplicates"]
            print(f"  holdout near-duplicates: {nd['pairs']} pairs (max cosine {nd['max_similarity']})")
        print(f"  difficulty: {d['by_difficulty']}, basis missing {d['missing_basis']}, "
              f"inconsistent with the rule {d['mismatches']}")
        print(f"  label-leaking rubric phrases: {len(lint['label_leaks'])}")
        for split, s in lint["splits"].items():
            ys, r, sw, ff = s["yes_share"], s["ranking"], s["single_word"], s["free_form"]
            diff = ", ".join(f"{k} {_fmt(v['yes_share'])}" for k, v in ys["by_difficulty"].items())
            cats = ", ".join(f"{k} {_fmt(v['yes_share'])}" for k, v in ys["by_category"].items())
            floors = ", ".join(f"{qt} {_fmt(v['mean_chance_rate'])}" for qt, v in s["guessing_floor"].items())
            print(f"  [{split}] yes-share by difficulty: {diff}; by category: {cats}")
            print(f"  [{split}] RANKING {r['n']}: {r['orders']} orders {r['order_lengths']}, {r['choices']} choices "
                  f"(A/B: {r['two_option_choices']}), orders of 3+ {_fmt(r['order3_share'])}; guessing floor: {floors}")
            print(f"  [{split}] SINGLE_WORD which-person {sw['which_person']}/{sw['n']}; FREE_FORM gold words max "
                  f"{ff['gold_words_max']} median {_fmt(ff['gold_words_median'])}, {ff['verdict_golds']} begin yes/no")
        if "demos" in lint:
            dm = lint["demos"]
            print(f"  demos: {dm['defective']} of {dm['rows']} defective")
    for v in res.get("violations", []):
        print(f"VIOLATION {v['limit']}: {v['value']} (allowed {v['allowed']}) {v['where']}")
    for err in res["errors"]:
        print(f"ERROR {err}")
    bad = len(res["errors"]) + len(res.get("violations", []))
    print("OK" if not bad else f"{len(res['errors'])} error(s), {len(res.get('violations', []))} violation(s)")


def register(sub) -> None:
    v = sub.add_parser("validate", help="check and lint a bench (default: the bundled one); exit 1 on errors or "
                       "limit violations")
    v.add_argument("paths", nargs="*", help="bench directories or task files (default: bundled)")
    v.add_argument("--bench", action="append", default=None, metavar="bundled|bundled-v1|PATH",
                   help="a bench to check (repeatable; same as a positional PATH)")
    v.add_argument("--catalog", default=None, help="catalog directory or reference skills.json")
    v.add_argument("--json", action="store_true", help="print the summary as JSON")
    v.add_argument("--per-skill", action="store_true", help="also print counts per skill")
    v.set_defaults(func=_cmd_validate)
