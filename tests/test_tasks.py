import json

import pytest

from pytest_skillbench.bench import bundled_dir, compute_task_uid, load_bench, load_catalog, load_tasks
from pytest_skillbench.bench.demos import load_demos
from pytest_skillbench.errors import SkillbenchError


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(bundled_dir("catalog"))


def good_task(**over):
    t = {"skill": "modus-ponens", "query_type": "YES_NO", "title": "T", "passage": "If p then q. p.",
         "question": "Does q follow? Answer yes or no.", "answer": "yes", "must_identify": ["a", "b", "c"],
         "difficulty": "intermediate", "domain": "logic"}
    t.update(over)
    t.setdefault("task_uid", compute_task_uid(t["skill"], t["query_type"], t["passage"], t["question"], t["answer"]))
    return t


def write_lines(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


MALFORMED = [
    ("not json", ['{"skill": "modus-ponens",'], None, "malformed JSON"),
    ("missing field", [{k: v for k, v in good_task().items() if k != "question"}], "question", "missing field"),
    ("unknown field", [good_task(colour="red")], "colour", "unknown field"),
    ("unknown skill", [good_task(skill="astrology")], "skill", "unknown skill"),
    ("unknown query type", [good_task(query_type="ESSAY")], "query_type", "unknown query type"),
    ("yes_no gold", [good_task(answer="maybe")], "answer", "YES_NO gold"),
    ("ranking gold", [good_task(query_type="RANKING", answer="The first one is better because it says so.")],
     "answer", "RANKING gold"),
    ("bad uid", [good_task(task_uid="1234")], "task_uid", "not shaped"),
    ("duplicate uid", [good_task(), good_task(title="other")], "task_uid", "duplicate task_uid"),
    ("bad difficulty", [good_task(difficulty="easy")], "difficulty", "unknown difficulty"),
    ("must_identify type", [good_task(must_identify="just a string")], "must_identify", "list of non-empty"),
    ("not an object", ['[1, 2, 3]'], None, "one JSON object"),
    ("empty passage", [good_task(passage="  ")], "passage", "non-empty string"),
]


@pytest.mark.parametrize("label, rows, field, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_task_file(tmp_path, catalog, label, rows, field, message):
    p = write_lines(tmp_path / "holdout.jsonl", rows)
    with pytest.raises(SkillbenchError, match=message) as ei:
        load_tasks(p, catalog=catalog)
    err = ei.value
    assert err.path == str(p)
    assert err.line == len(rows)  # the defect is on the last line written
    assert err.field == field


def test_errors_are_collected_when_asked(tmp_path, catalog):
    p = write_lines(tmp_path / "holdout.jsonl", [good_task(), "{bad", good_task(skill="nope", title="x")])
    errors = []
    tasks = load_tasks(p, catalog=catalog, errors=errors)
    assert len(tasks) == 1
    assert [e.line for e in errors] == [2, 3]


def test_task_in_both_splits_is_an_error(tmp_path, catalog):
    write_lines(tmp_path / "holdout.jsonl", [good_task()])
    write_lines(tmp_path / "train.jsonl", [good_task()])
    with pytest.raises(SkillbenchError, match="appears in both holdout and train"):
        load_bench(tmp_path, catalog)


def test_uid_is_stable_and_content_derived():
    a = compute_task_uid("s", "YES_NO", "p", "q", "yes")
    assert a == compute_task_uid("s", "YES_NO", "p", "q", "yes")
    assert a != compute_task_uid("s", "YES_NO", "p", "q", "no")
    assert len(a) == 19 and a.count("-") == 3


# query-type shares (low, high) and must_identify lengths of each bundled bench: v1 (60% YES_NO, long
# rubrics) and v2 (docs/bench.md "Mix": per skill and split one yes, one no, one of each other type)
SHAPES = {"bundled-v1": ({"YES_NO": (0.55, 0.65), "FREE_FORM": (0.15, 0.18), "SINGLE_WORD": (0.10, 0.12),
                          "RANKING": (0.10, 0.12)}, (3, 5)),
          "bundled": ({"YES_NO": (0.4, 0.4), "FREE_FORM": (0.2, 0.2), "SINGLE_WORD": (0.2, 0.2),
                       "RANKING": (0.2, 0.2)}, (2, 4))}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bundled_bench_shape(name):
    bench = load_bench(name)
    (shares, (mi_lo, mi_hi)) = SHAPES[name]
    hold, train = bench.split("holdout"), bench.split("train")
    assert len(hold) == 200 and len(train) == 200
    for tasks in (hold, train):
        per_skill = {}
        for t in tasks:
            per_skill[t.skill] = per_skill.get(t.skill, 0) + 1
            assert t.task_uid == compute_task_uid(t.skill, t.query_type, t.passage, t.question, t.answer)
        assert len(per_skill) == 40 and set(per_skill.values()) == {5}
        n = len(tasks)
        for qt, (lo, hi) in shares.items():
            assert lo <= sum(t.query_type == qt for t in tasks) / n <= hi, qt
        yn = [t for t in tasks if t.query_type == "YES_NO"]
        assert 0.4 <= sum(t.answer == "yes" for t in yn) / len(yn) <= 0.6
        assert mi_lo <= min(len(t.must_identify) for t in tasks) and max(len(t.must_identify) for t in tasks) <= mi_hi
    assert not {t.task_uid for t in hold} & {t.task_uid for t in train}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bundled_demos(name):
    bench = load_bench(name)
    catalog = bench.catalog
    demos = load_demos(bundled_dir("bench_tasks", name) / "demos.jsonl", catalog)
    train_uids = {t.task_uid for t in bench.split("train")}
    assert len(demos) >= 120
    curated = [d for d in demos if d.condition == "curated"]
    baseline = [d for d in demos if d.condition == "baseline"]
    assert len(baseline) >= 40
    assert {d.skill for d in curated} == set(catalog.names())
    for d in demos:
        assert d.task_uid in train_uids
        roles = [m["role"] for m in d.messages]
        assert roles == ["system", "user", "assistant"]
        assert d.messages[-1]["content"].rstrip().splitlines()[-1].startswith("ANSWER:")
        has_block = "--- SKILL:" in d.messages[0]["content"]
        assert has_block == (d.condition == "curated")
