import pytest

from pytest_skillbench.bench.tasks import Task
from pytest_skillbench.judges.deterministic import extract_answer, judge, normalise


def task(qt, answer):
    return Task(task_uid="0000-0000-0000-0000", skill="modus-ponens", query_type=qt, title="t", passage="p",
                question="q", answer=answer, must_identify=("a",))


@pytest.mark.parametrize("response, expected", [
    ("reasoning\nANSWER: yes", "yes"),
    ("answer: No.", "No"),
    ("**ANSWER:** Yes", "Yes"),
    ("**Answer: yes**", "yes"),
    ("ANSWER: no\nwait\nANSWER: yes", "yes"),
    ('ANSWER: "modus tollens".', "modus tollens"),
    ("> ANSWER: *B*", "B"),
    ("The answer is yes", None),
    ("", None),
    ("My final answer: yes", None),  # only a line that starts with ANSWER counts
])
def test_extract(response, expected):
    assert extract_answer(response) == expected


@pytest.mark.parametrize("qt, gold, response, status", [
    ("YES_NO", "yes", "ANSWER: Yes.", "passed"),
    ("YES_NO", "yes", "ANSWER: no", "failed"),
    ("YES_NO", "no", "ANSWER: probably not", "unscored"),
    ("YES_NO", "no", "no answer line at all", "unscored"),
    ("SINGLE_WORD", "straw man", "ANSWER: Straw-man", "passed"),
    ("SINGLE_WORD", "base-rate neglect", "ANSWER: the base rate neglect", "passed"),
    ("SINGLE_WORD", "squirrels", "ANSWER: squirrel", "passed"),
    ("SINGLE_WORD", "heavier", "ANSWER: heavy", "failed"),
    ("RANKING", "A", "ANSWER: (A)", "passed"),
    ("RANKING", "A", "ANSWER: Argument A", "passed"),
    ("RANKING", "A", "ANSWER: B", "failed"),
    ("RANKING", "Park, Ruiz", "ANSWER: Park > Ruiz", "passed"),
    ("RANKING", "Park, Ruiz", "ANSWER: Ruiz, Park", "failed"),
    ("RANKING", "Dana, Eli, Faye", "ANSWER: Dana, Eli, and Faye", "passed"),
    ("RANKING", "E2", "ANSWER: e2", "passed"),
    ("FREE_FORM", "It is circular.", "ANSWER: circular", "unscored"),
])
def test_verdicts(qt, gold, response, status):
    v = judge(task(qt, gold), response)
    assert v.status == status
    assert v.judge == "deterministic"
    assert v.expected == gold


def test_format_miss_is_unscored_never_failed():
    v = judge(task("YES_NO", "yes"), "I believe the argument is valid, so yes.")
    assert v.status == "unscored" and v.reason == "no_answer_line" and v.format_ok is False


def test_normalisation():
    assert normalise("The Straw-Men.") == "straw men"
    assert normalise("An analogy") == "analogy"
    assert normalise("glass") == "glass"


def test_number_words_read_as_digits():
    from pytest_skillbench.bench.tasks import Task
    from pytest_skillbench.judges.deterministic import judge

    t = Task(task_uid="0000-0000-0000-0009", skill="modus-ponens", query_type="SINGLE_WORD", title="t",
             passage="p", question="How many? Answer with the number.", answer="2", must_identify=("x",))
    assert judge(t, "ANSWER: two").status == "passed"
    assert judge(t, "ANSWER: Two.").status == "passed"
    assert judge(t, "ANSWER: three").status == "failed"
