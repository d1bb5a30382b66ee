"""Bench v2 infrastructure (issue 17): optional task keys, chance rates, bench versions, the merge script,
honorifics in the deterministic judge, the per-query-type report, and the lint of ``skillbench validate``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO, write_replay
from pytest_skillbench.bench import (
    bench_version,
    bundled_dir,
    compute_task_uid,
    load_bench,
    load_catalog,
    load_tasks,
)
from pytest_skillbench import lint as V
from pytest_skillbench.bench.demos import Demo
from pytest_skillbench.bench.tasks import DifficultyBasis, Task, write_tasks
from pytest_skillbench.errors import SkillbenchError

V1_CONTENT_HASH = "16e16342d6117b8f"  # bench v1 as first bundled: to_dict of v1 tasks must not change


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(bundled_dir("catalog"))


def row(**over) -> dict:
    t = {"skill": "modus-ponens", "query_type": "YES_NO", "title": "T", "passage": "If p then q. p.",
         "question": "Does q follow? Answer yes or no.", "answer": "yes", "must_identify": ["a", "b"],
         "difficulty": "intermediate", "domain": "logic", "options": ["yes", "no"],
         "difficulty_basis": {"steps": 2, "distractors": 0}}
    t.update(over)
    t = {k: v for k, v in t.items() if v is not None}
    t.setdefault("task_uid", compute_task_uid(t["skill"], t["query_type"], t["passage"], t["question"], t["answer"]))
    return t


def load_one(tmp_path, catalog, data: dict) -> Task:
    p = tmp_path / "holdout.jsonl"
    p.write_text(json.dumps(data) + "\n")
    return load_tasks(p, catalog=catalog)[0]


# ---- loader -----------------------------------------------------------------------------------------------
def test_optional_keys_load_and_round_trip(tmp_path, catalog):
    t = load_one(tmp_path, catalog, row(difficulty_basis={"steps": 4, "distractors": 1}, difficulty="advanced"))
    assert t.options == ("yes", "no") and t.difficulty_basis == DifficultyBasis(4, 1)
    d = t.to_dict()
    assert d["options"] == ["yes", "no"] and d["difficulty_basis"] == {"steps": 4, "distractors": 1}
    p = tmp_path / "again.jsonl"
    write_tasks(p, [t])
    assert load_tasks(p, catalog=catalog) == [t]


def test_absent_optional_keys_are_left_out_so_v1_hash_is_unchanged(tmp_path, catalog):
    t = load_one(tmp_path, catalog, row(options=None, difficulty_basis=None))
    assert t.options is None and t.difficulty_basis is None
    assert "options" not in t.to_dict() and "difficulty_basis" not in t.to_dict()
    assert load_bench("bundled-v1").content_hash() == V1_CONTENT_HASH


BAD_OPTIONAL = [
    ("options not a list", row(options="yes,no"), "options", "list of non-empty strings"),
    ("options with a blank", row(options=["yes", " "]), "options", "list of non-empty strings"),
    ("options repeat", row(query_type="SINGLE_WORD", answer="Ada", options=["Ada", "ada", "Bo"]), "options",
     "repeat"),
    ("yes_no options", row(options=["yes", "maybe"]), "options", "yes"),
    ("free_form options", row(query_type="FREE_FORM", answer="the premise", options=["x"]), "options",
     "no options"),
    ("gold not an option", row(query_type="SINGLE_WORD", answer="Ada", options=["Bo", "Cy"]), "options",
     "not one of the options"),
    ("order item not an option", row(query_type="RANKING", answer="Ada, Bo, Cy", options=["Ada", "Bo", "Di"]),
     "options", "'Cy' is not one of"),
    ("ranking one option", row(query_type="RANKING", answer="A", options=["A"]), "options", "at least 2"),
    ("ranking gold repeats", row(query_type="RANKING", answer="Ada, Bo, Ada", options=["Ada", "Bo"]), "answer",
     "twice"),
    ("basis not an object", row(difficulty_basis=[2, 0]), "difficulty_basis", "must be an object"),
    ("basis unknown key", row(difficulty_basis={"steps": 2, "distractors": 0, "hops": 1}),
     "difficulty_basis.hops", "unknown key"),
    ("basis steps zero", row(difficulty_basis={"steps": 0, "distractors": 0}), "difficulty_basis.steps", ">= 1"),
    ("basis distractors bool", row(difficulty_basis={"steps": 2, "distractors": True}),
     "difficulty_basis.distractors", "integer"),
    ("basis missing key", row(difficulty_basis={"steps": 2}), "difficulty_basis.distractors", "integer"),
]


@pytest.mark.parametrize("label, data, field, message", BAD_OPTIONAL, ids=[b[0] for b in BAD_OPTIONAL])
def test_bad_optional_keys_name_file_line_field(tmp_path, catalog, label, data, field, message):
    p = tmp_path / "holdout.jsonl"
    p.write_text(json.dumps(row(title="fine")) + "\n" + json.dumps(data) + "\n")
    with pytest.raises(SkillbenchError, match=message) as ei:
        load_tasks(p, catalog=catalog)
    assert (ei.value.path, ei.value.line, ei.value.field) == (str(p), 2, field)


def task(**over) -> Task:
    base = {"task_uid": "0000-0000-0000-0000", "skill": "modus-ponens", "query_type": "YES_NO", "title": "T",
            "passage": "If p then q. p.", "question": "Does q follow? Answer yes or no.", "answer": "yes",
            "must_identify": ("p holds",), "difficulty": "intermediate", "domain": "logic",
            "options": ("yes", "no"), "difficulty_basis": DifficultyBasis(2, 0)}
    base.update(over)
    return Task(**base)


CHANCE = [
    ("yes_no", {}, None, 0.5),
    ("single word with candidates", {"query_type": "SINGLE_WORD", "answer": "east",
                                         "options": ("north", "east", "south", "west")}, None, 0.25),
    ("single word open", {"query_type": "SINGLE_WORD", "answer": "keel", "options": ()}, None, None),
    ("free form", {"query_type": "FREE_FORM", "answer": "the premise", "options": ()}, None, None),
    ("choice from options", {"query_type": "RANKING", "answer": "B", "options": ("A", "B", "C")}, "choice", 1 / 3),
    ("order of three", {"query_type": "RANKING", "answer": "Ada, Bo, Cy", "options": ("Bo", "Cy", "Ada")}, "order",
     1 / 6),
    ("order of four without options", {"query_type": "RANKING", "answer": "w, x, y, z", "options": None}, "order",
     1 / 24),
    ("two of four ordered", {"query_type": "RANKING", "answer": "Ada, Bo", "options": ("Ada", "Bo", "Cy", "Di")},
     "order", 1 / 12),
    ("v1 A/B from the question", {"query_type": "RANKING", "answer": "B", "options": None,
                                      "question": "Which reply commits a red herring, A or B? Answer with the letter."},
     "choice", 0.5),
    ("A, B, C or D from the question", {"query_type": "RANKING", "answer": "C", "options": None,
                                            "question": "Which line, A, B, C or D, is a metaphor? Answer with the letter."},
     "choice", 0.25),
    ("labels unreadable", {"query_type": "RANKING", "answer": "C", "options": None,
                               "question": "Which option is best? Answer with the letter."}, "choice", None),
]


@pytest.mark.parametrize("label, over, kind, chance", CHANCE, ids=[c[0] for c in CHANCE])
def test_ranking_kind_and_chance_rate(label, over, kind, chance):
    t = task(**over)
    assert t.ranking_kind == kind
    assert t.chance_rate == (None if chance is None else pytest.approx(chance))


def test_v1_ranking_guessing_floor_in_numbers():
    hold = load_bench("bundled-v1").split("holdout")
    rk = [t for t in hold if t.query_type == "RANKING"]
    assert sum(t.ranking_kind == "choice" and t.chance_rate == 0.5 for t in rk) == 15  # the issue's 15 A/B
    assert all(t.chance_rate is not None for t in rk)


# ---- bundled benches and versions ---------------------------------------------------------------------------
def test_bundled_v1_has_its_own_catalog_and_version():
    b1 = load_bench("bundled-v1")
    assert b1.version == "v1" and b1.source == "bundled-v1" and b1.bundled
    assert Path(b1.catalog.source) == bundled_dir("catalog", "bundled-v1") == bundled_dir("catalog") / "v1"
    assert len(b1.split("holdout")) == 200 and len(b1.split("train")) == 200
    b2 = load_bench("bundled")
    assert b2.version == "v2" and b2.source == "bundled" and Path(b2.catalog.source) == bundled_dir("catalog")
    ext = load_bench(bundled_dir("bench_tasks", "bundled-v1") / "holdout.jsonl", b1.catalog)
    assert ext.version == "external" and not ext.bundled
    assert [bench_version(x) for x in ("bundled", "bundled-v1", "x.jsonl")] == ["v2", "v1", "external"]


def test_wheel_packages_the_v1_subfolders():
    text = (REPO / "pyproject.toml").read_text()
    packages = text[text.index("packages = ["):text.index("]", text.index("packages = ["))]
    assert '"pytest_skillbench.bundled.bench_tasks.v1"' in packages
    assert '"pytest_skillbench.bundled.catalog.v1"' in packages and "v2_parts" not in packages
    assert '"pytest_skillbench.bundled.bench_tasks.v1" = ["*.jsonl"]' in text
    assert '"pytest_skillbench.bundled.catalog.v1" = ["*.yaml"]' in text


def test_generation_cache_key_carries_the_bench_version_except_v1():
    from pytest_skillbench.generation import request_key
    from pytest_skillbench.students.base import GenRequest

    req = GenRequest("u", "baseline", [{"role": "user", "content": "hi"}])
    fp = {"model": "m"}
    assert request_key(fp, req, "v1") == request_key(fp, req)  # caches of v1 runs stay valid
    keys = {request_key(fp, req, v) for v in ("v1", "v2", "external")}
    assert len(keys) == 3


def test_manifest_and_report_carry_version_and_query_type_chance(pytester, tmp_path):
    b1 = load_bench("bundled-v1")
    hold = b1.split("holdout")
    picked = [t for t in hold if t.skill in ("ad-hominem", "contrapositive")]
    f = write_replay(tmp_path / "toy.jsonl", picked, p_format=1.0)
    out = tmp_path / "r.json"
    res = pytester.runpytest_subprocess("-p", "no:randomly", "--student", f"replay:{f}", "--bench", "bundled-v1",
                                        "--skillbench-json", str(out), "-q",
                                        "-k", " or ".join(t.task_uid for t in picked))
    report = json.loads(out.read_text())
    assert report["run"]["bench_version"] == "v1" and report["run"]["bench"] == "bundled-v1"
    qts = report["students"]["toy"]["conditions"]["baseline"]["query_types"]
    assert qts["YES_NO"]["chance_rate"] == 0.5
    assert qts.get("FREE_FORM", {}).get("chance_rate") is None  # FREE_FORM: no chance rate (or not run)
    rk = [t for t in picked if t.query_type == "RANKING"]
    assert qts["RANKING"]["chance_rate"] == pytest.approx(sum(t.chance_rate for t in rk) / len(rk))
    for q in qts.values():
        assert q["pass_rate"] == (q["passed"] / q["scored"] if q["scored"] else None)
    text = res.stdout.str()
    assert "holdout.jsonl::ad-hominem[" in text  # item ids of a bundled bench name the split file
    assert "query type" in text and "chance" in text


# ---- deterministic judge ------------------------------------------------------------------------------------
@pytest.mark.parametrize("said, gold, ok", [
    ("Ms. Quist", "Quist", True), ("Dr Quist", "Quist", True), ("Prof. Ana Ruiz", "Ana Ruiz", True),
    ("Quist", "Mrs. Quist", True), ("Mr Ruiz", "Quist", False), ("Miss", "Quist", False),
])
def test_single_word_drops_honorifics(said, gold, ok):
    from pytest_skillbench.judges.deterministic import judge

    t = task(query_type="SINGLE_WORD", answer=gold, options=())
    assert (judge(t, f"Reasoning.\nANSWER: {said}").status == "passed") is ok


# ---- merge script -------------------------------------------------------------------------------------------
def _script(*args, cwd=None):
    return subprocess.run([sys.executable, str(REPO / "bench_tasks" / "build_v2.py"), *args],
                          capture_output=True, text=True, cwd=cwd, check=False)


def test_build_v2_merges_sorted_and_refuses_incomplete_parts(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    a = row(skill="tu-quoque", title="a")
    b = row(skill="ad-hominem", query_type="FREE_FORM", answer="the attack", options=[], title="b")
    c = row(skill="ad-hominem", answer="no", title="c")
    (parts / "G1.holdout.jsonl").write_text("\n".join(json.dumps(x) for x in (a, b, c)) + "\n")
    (parts / "G1.train.jsonl").write_text(json.dumps(row(title="t")) + "\n")
    res = _script("--parts", str(parts), "--out", str(tmp_path / "out"))
    assert res.returncode == 1 and "incomplete" in res.stderr and not (tmp_path / "out").exists()
    res = _script("--parts", str(parts), "--out", str(tmp_path / "out"), "--partial")
    assert res.returncode == 0, res.stderr
    merged = [json.loads(x) for x in (tmp_path / "out" / "holdout.jsonl").read_text().splitlines()]
    assert [m["title"] for m in merged] == ["c", "b", "a"]  # by skill, then query type
    assert _script("--parts", str(parts), "--partial").returncode == 1  # never a partial bundled bench


# ---- lint ---------------------------------------------------------------------------------------------------
PASSAGES = [
    "Orla runs the bakery on Mill Lane and bakes rye loaves every Tuesday for the market stall.",
    "The ferry to Inchmore leaves at nine and returns at four when the harbour master allows it.",
    "A survey of pond snails in the park counted forty shells along the northern bank this spring.",
    "The council planted lime trees along Station Road after the old elms were felled in March.",
    "Tomas tunes the chapel organ twice a year and logs each stop that sticks in a red notebook.",
    "Freight from the quarry moves by rail on weekdays and by lorry on the first Saturday of each month.",
    "The school choir rehearses in the gym because the music room roof leaked during the storms.",
    "Pharmacist Ines checks every prescription twice before the counter opens at half past eight.",
]


def clean_bench(cat) -> dict[str, list[Task]]:
    """A tiny bench that passes every limit the tests below trip one at a time."""
    hold, train = [], []
    for i, (ans, diff) in enumerate([("yes", "intermediate"), ("no", "intermediate"), ("yes", "advanced"),
                                     ("no", "advanced")]):
        basis = DifficultyBasis(2, 0) if diff == "intermediate" else DifficultyBasis(4, 1)
        hold.append(task(task_uid=f"0000-0000-0000-000{i}", passage=PASSAGES[i], answer=ans, difficulty=diff,
                         difficulty_basis=basis, must_identify=(f"point {i} about loaves",)))
        train.append(task(task_uid=f"1111-0000-0000-000{i}", passage=PASSAGES[i + 4], answer=ans, difficulty=diff,
                          difficulty_basis=basis, must_identify=(f"point {i} about ferries",)))
    return {"holdout": hold, "train": train}


def violated(splits, cat, demos=None) -> set[str]:
    return {v["limit"] for v in V.violations(V.lint(splits, cat, demos))}


def test_clean_bench_passes(catalog):
    assert violated(clean_bench(catalog), catalog) == set()


def _add(splits, split, t):
    splits[split] = splits[split] + [t]
    return splits


def _bad_card_ngram(s, cat):
    return _add(s, "holdout", replace(s["holdout"][0], task_uid="9999-0000-0000-0001",
                                      must_identify=(cat["modus-ponens"].constraints[0],)))


def _bad_card_share(s, cat):
    words = sorted(V.content_words(cat["modus-ponens"].description))[:6]
    return _add(s, "holdout", replace(s["holdout"][0], task_uid="9999-0000-0000-0002",
                                      must_identify=(" and ".join(words[::-1]),)))


def _bad_giveaway(s, cat):
    return _add(s, "holdout", replace(s["holdout"][0], task_uid="9999-0000-0000-0003",
                                      passage=s["holdout"][0].passage + " Nothing else is known."))


def _bad_shared_8gram(s, cat):
    t = s["train"][0]
    shared = " ".join(s["holdout"][1].passage.split()[:9])
    return _add(s, "train", replace(t, task_uid="9999-0000-0000-0004",
                                    passage=f"Unrelated farming words first. {shared} then other words."))


def _bad_near_duplicate_split(s, cat):
    p = s["holdout"][2].passage.replace("forty", "fifty").replace("spring", "autumn")
    return _add(s, "train", replace(s["train"][0], task_uid="9999-0000-0000-0005", passage=p))


def _bad_near_duplicate_holdout(s, cat):
    h = s["holdout"][3]
    return _add(s, "holdout", replace(h, task_uid="9999-0000-0000-0006", passage=h.passage.replace("March", "May")))


def _bad_yes_share(s, cat):
    for i in range(2):
        s = _add(s, "holdout", replace(s["holdout"][0], task_uid=f"9999-0000-0001-000{i}",
                                       passage=f"{PASSAGES[(i + 5) % 8][:40]} case {i} {'x' * i}"))
    return s


def _ranking(uid, answer, options, question="Order them. Answer with the names in order, separated by commas."):
    return task(task_uid=uid, query_type="RANKING", answer=answer, options=options, question=question,
                passage=f"Ranking passage {uid} about three riders on a mountain stage.")


def _bad_order_share(s, cat):
    s = _add(s, "holdout", _ranking("9999-0000-0002-0001", "B", ("A", "B", "C")))
    return _add(s, "holdout", _ranking("9999-0000-0002-0002", "Ada, Bo, Cy", ("Cy", "Ada", "Bo")))


def _bad_two_option_choice(s, cat):
    s = _add(s, "holdout", _ranking("9999-0000-0002-0003", "B", ("A", "B")))
    for i in range(3):
        s = _add(s, "holdout", _ranking(f"9999-0000-0002-001{i}", "Ada, Bo, Cy, Di", ("Cy", "Ada", "Bo", "Di")))
    return s


def _bad_guess_floor(s, cat):
    # choices of 3 and orders of 3 alone cannot pass 0.30 while orders stay >= 60% (at most 0.23), so the
    # floor trips together with the A/B count here: two A/B choices, floor 1/2
    s = _add(s, "holdout", _ranking("9999-0000-0002-0004", "A", ("A", "B")))
    return _add(s, "holdout", _ranking("9999-0000-0002-0005", "B", ("A", "B")))


def _bad_two_candidates(s, cat):
    return _add(s, "holdout", task(task_uid="9999-0000-0003-0001", query_type="SINGLE_WORD", answer="lose",
                                   options=("win", "lose"), question="Win or lose? Answer with one word."))


def _bad_which_person(s, cat):
    return _add(s, "holdout", task(task_uid="9999-0000-0003-0002", query_type="SINGLE_WORD", answer="Quist",
                                   options=(), passage="Teachers Quist and Abel marked the essays on Friday.",
                                   question="Which teacher's mark shows the error? Answer with one word."))


def _free_form(uid, answer):
    return task(task_uid=uid, query_type="FREE_FORM", answer=answer, options=(),
                question="What does the plan assume? Answer in a few words.")


def _bad_free_form_long(s, cat):
    return _add(s, "holdout", _free_form("9999-0000-0004-0001",
                                         "that the ferry always leaves on time whatever the weather or tide does"))


def _bad_free_form_verdict(s, cat):
    return _add(s, "holdout", _free_form("9999-0000-0004-0002", "No, the ferry may be late"))


def _bad_difficulty_mismatch(s, cat):
    h = s["holdout"]
    s["holdout"] = [replace(h[0], difficulty_basis=DifficultyBasis(5, 0)), *h[1:]]
    return s


def _bad_basis_missing(s, cat):
    h = s["holdout"]
    s["holdout"] = [replace(h[0], difficulty_basis=None), *h[1:]]
    return s


def _bad_leak_phrase(s, cat):
    for i in range(V.LEAK_PHRASE_MIN_TASKS):
        for ans in ("no", "yes"):  # balanced golds, so only the phrase leaks
            phrase = "a near miss of the rule" if ans == "no" else f"plain point {i}"
            s = _add(s, "train", task(task_uid=f"9999-0000-0005-{i:02d}{ans[0]}0", answer=ans,
                                      passage=f"Leak passage {i} {ans} about a goods yard and its cranes.",
                                      must_identify=(phrase,)))
    return s


BAD = {  # each limit constant -> (the violation it trips, how to make a deliberately bad bench)
    "CARD_SHARED_NGRAMS_MAX": ("CARD_OVERLAP_TASKS_MAX", _bad_card_ngram),
    "CARD_CONTENT_SHARE_MAX": ("CARD_OVERLAP_TASKS_MAX", _bad_card_share),
    "CARD_OVERLAP_TASKS_MAX": ("CARD_OVERLAP_TASKS_MAX", _bad_card_ngram),
    "GIVEAWAY_TASKS_MAX": ("GIVEAWAY_TASKS_MAX", _bad_giveaway),
    "HOLDOUT_TRAIN_NGRAM_SHARE_MAX": ("HOLDOUT_TRAIN_NGRAM_SHARE_MAX", _bad_shared_8gram),
    "NEAR_DUPLICATE_SIMILARITY": ("HOLDOUT_NEAR_DUPLICATES_MAX", _bad_near_duplicate_holdout),
    "HOLDOUT_TRAIN_NEAR_DUPLICATES_MAX": ("HOLDOUT_TRAIN_NEAR_DUPLICATES_MAX", _bad_near_duplicate_split),
    "HOLDOUT_NEAR_DUPLICATES_MAX": ("HOLDOUT_NEAR_DUPLICATES_MAX", _bad_near_duplicate_holdout),
    "YES_SHARE_RANGE": ("YES_SHARE_RANGE", _bad_yes_share),
    "RANKING_ORDER3_SHARE_MIN": ("RANKING_ORDER3_SHARE_MIN", _bad_order_share),
    "RANKING_TWO_OPTION_CHOICES_MAX": ("RANKING_TWO_OPTION_CHOICES_MAX", _bad_two_option_choice),
    "GUESS_FLOOR_MAX": ("GUESS_FLOOR_MAX", _bad_guess_floor),
    "SINGLE_WORD_TWO_CANDIDATES_MAX": ("SINGLE_WORD_TWO_CANDIDATES_MAX", _bad_two_candidates),
    "WHICH_PERSON_SHARE_MAX": ("WHICH_PERSON_SHARE_MAX", _bad_which_person),
    "FREE_FORM_GOLD_WORDS_MAX": ("FREE_FORM_GOLD_WORDS_MAX", _bad_free_form_long),
    "FREE_FORM_VERDICT_GOLDS_MAX": ("FREE_FORM_VERDICT_GOLDS_MAX", _bad_free_form_verdict),
    "DIFFICULTY_MISMATCHES_MAX": ("DIFFICULTY_MISMATCHES_MAX", _bad_difficulty_mismatch),
    "DIFFICULTY_BASIS_MISSING_MAX": ("DIFFICULTY_BASIS_MISSING_MAX", _bad_basis_missing),
    "LEAK_PHRASE_MIN_TASKS": ("LEAK_PHRASES_MAX", _bad_leak_phrase),
    "LEAK_PHRASES_MAX": ("LEAK_PHRASES_MAX", _bad_leak_phrase),
}


def test_every_limit_has_a_bad_task_test():
    assert set(V.LIMITS) == set(BAD) | {"DEMO_DEFECTS_MAX"}


@pytest.mark.parametrize("limit", sorted(BAD))
def test_a_deliberately_bad_bench_trips_the_limit(catalog, limit):
    expected, make = BAD[limit]
    bad = make(clean_bench(catalog), catalog)
    assert expected in violated(bad, catalog)
    assert expected not in violated(clean_bench(catalog), catalog)


def _demo(t: Task, text: str) -> Demo:
    return Demo(messages=({"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                          {"role": "assistant", "content": text}), task_uid=t.task_uid, skill=t.skill,
                condition="curated", line=1)


def test_demo_defects_trip_the_limit(catalog):
    s = clean_bench(catalog)
    t = s["train"][0]
    n = len(catalog[t.skill].procedure)
    steps = "\n".join(f"Step {k} - part: reasoning." for k in range(1, n + 1))
    good = _demo(t, f"{steps}\nANSWER: {t.answer}")
    assert "DEMO_DEFECTS_MAX" not in violated(s, catalog, [good])
    for text in (f"{steps}\nANSWER: {'no' if t.answer == 'yes' else 'yes'}",  # wrong answer
                 steps.replace(f"Step {n} ", "Then ") + f"\nANSWER: {t.answer}",  # a step not named
                 f"ANSWER: {t.answer}\n{steps}"):  # answer not last
        assert "DEMO_DEFECTS_MAX" in violated(s, catalog, [_demo(t, text)])
    other = replace(t, task_uid="ffff-ffff-ffff-ffff")
    assert V.check_demo(_demo(other, "x"), None, None) == ["task not in the train split"]


GIVEAWAYS = [
    ("Vance did not dispute the bug figures.", "undisputed"),
    ("Nothing else is known about the order.", "nothing else"),
    ("No other witness saw the van.", "nothing else"),
    ("The Act lists no exceptions.", "no exceptions"),
    ("There is no evidence that the pump failed.", "no evidence"),
    ("In fact the ferry had left early.", "in fact"),
    ("The pump was actually fine.", "actually"),
    ("It turned out the valve was shut.", "it turned out"),
    ("The real reason was the frost.", "the real reason"),
    ("She mistakenly counted the crates twice.", "verdict adverb"),
    ("Regardless, the council voted yes.", "regardless"),
    ("This is a classic straw man.", "names the error"),
]


@pytest.mark.parametrize("sentence, cue", GIVEAWAYS)
def test_giveaway_cues(sentence, cue):
    hits = V.giveaways(f"Mara runs a depot. {sentence} The lorries leave at six.")
    assert [h["cue"] for h in hits] == [cue]


def test_characters_may_say_anything():
    assert V.giveaways("Ada told the board, 'Nothing else is known, in fact.' The board voted.") == []
    assert V.giveaways('Bo argues that no other supplier exists. The depot closed.') == []


def test_cue_list_is_documented():
    doc = (REPO / "docs" / "bench.md").read_text()
    for name, _ in V.GIVEAWAY_CUES:
        assert name in doc


# ---- the v1 problems in numbers, and the CLI ------------------------------------------------------------------
@pytest.fixture(scope="module")
def v1_report():
    return V.validate("bundled-v1")


def test_v1_lint_reports_the_issue_problems_in_numbers(v1_report):
    lint, hold = v1_report["lint"], v1_report["lint"]["splits"]["holdout"]
    assert v1_report["bench_version"] == "v1" and v1_report["errors"] == []
    assert lint["card_overlap"]["tasks_over_limit"] >= 30
    assert lint["giveaways"]["by_split"]["holdout"] >= 20
    assert hold["ranking"]["two_option_choices"] == 15 and hold["ranking"]["order3_share"] < 0.6
    assert hold["single_word"]["which_person"] >= 12
    assert hold["free_form"]["verdict_golds"] == 25 and hold["free_form"]["gold_words_median"] > 30
    yd = hold["yes_share"]["by_difficulty"]
    assert yd["advanced"]["yes_share"] < 0.4 and yd["intermediate"]["yes_share"] > 0.6
    assert any(x["phrase"] == "near miss" and x["gold"] == "no" for x in lint["label_leaks"])
    assert lint["holdout_train"]["max_shared_8gram_share"] == 0.0
    names = {v["limit"] for v in v1_report["violations"]}
    assert {"CARD_OVERLAP_TASKS_MAX", "GIVEAWAY_TASKS_MAX", "RANKING_TWO_OPTION_CHOICES_MAX", "YES_SHARE_RANGE",
            "WHICH_PERSON_SHARE_MAX", "FREE_FORM_VERDICT_GOLDS_MAX", "LEAK_PHRASES_MAX"} <= names


def test_validate_cli_v1_exits_1_with_readable_violations(capsys):
    from pytest_skillbench.cli import main

    assert main(["validate", "--bench", "bundled-v1"]) == 1
    out = capsys.readouterr().out
    assert "bench: bundled-v1 (v1)" in out and "VIOLATION RANKING_TWO_OPTION_CHOICES_MAX: 15" in out
    assert "narrator give-aways:" in out


def test_validate_cli_json_lists_limits_and_violations(capsys):
    from pytest_skillbench.cli import main

    assert main(["validate", "--bench", "bundled-v1", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["limits"]["FREE_FORM_GOLD_WORDS_MAX"] == 8 and out["violations"]
    assert all(set(v) == {"limit", "allowed", "value", "where"} for v in out["violations"])


def test_bundled_v2_passes_every_limit():
    """Holds once bench_tasks/build_v2.py has merged the five parts into the bundled files."""
    res = V.validate("bundled")
    assert res["errors"] == []
    assert res["violations"] == []
    assert res["splits"] == {"holdout": 200, "train": 200} and res["demos"]["rows"] == 120
    assert not math.isnan(res["lint"]["holdout_train"]["nn_similarity_max"])
