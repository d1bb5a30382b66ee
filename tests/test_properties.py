"""Hypothesis properties of the parsers and planners everything else trusts: gate expressions, the ANSWER
line, the judges' strict JSON reader, the engine's prefix plan and carrier tree, the episode record, and the
fast text scans of the drift and phantom-mention metrics against their plain forms."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pytest_skillbench.diagnostics import _PHANTOM_PATTERNS, _PHANTOM_WORD, phantom_skill_mention
from pytest_skillbench.episodes import Episode, Verdict
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.gates import COND_METRICS, DELTA_METRICS, OPS, parse_gate
from pytest_skillbench.judges.deterministic import extract_answer
from pytest_skillbench.judges.llm import JudgeParseError, json_object
from pytest_skillbench.students.engine import MIN_SHARED, carrier_tree, prefix_plan
from pytest_skillbench.studies.drift import _REFUSAL, _norm_quotes, is_refusal, load_slop_phrases, slop_hits

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
NUMBERS = st.decimals(min_value=-100, max_value=100, places=3, allow_nan=False, allow_infinity=False)


# -- parse_gate ------------------------------------------------------------------------------------------
@given(metric=st.one_of(st.tuples(st.sampled_from(["baseline", "curated"]), st.sampled_from(COND_METRICS)),
                        st.tuples(st.just("delta"), st.sampled_from(DELTA_METRICS))),
       op=st.sampled_from(sorted(OPS)), number=NUMBERS, pct=st.booleans(), skill=st.none() | NAMES,
       student=st.none() | st.sampled_from(["v2", "v2.1", "a-b"]), pad=st.sampled_from(["", " ", "  "]))
def test_parse_gate_reads_back_what_it_was_given(metric, op, number, pct, skill, student, pad):
    head, sub = metric
    lhs = "".join([f"student:{student}." if student else "", f"skill:{skill}." if skill else "", f"{head}.{sub}"])
    text = f"{pad}{lhs}{pad}{op}{pad}{number}{'%' if pct else ''}{pad}"
    g = parse_gate(text, students=["v2", "v2.1", "a-b"])
    assert g.metric == f"{head}.{sub}" and g.op == op
    assert g.threshold == pytest.approx(float(number) / (100 if pct else 1))
    assert (g.student, g.skill) == (student, skill)


@given(st.text(max_size=40))
def test_parse_gate_accepts_or_raises_one_clear_error(text):
    try:
        g = parse_gate(text)
    except SkillbenchError as exc:
        assert "gate syntax:" in str(exc) and "\n" not in str(exc)
    else:
        assert g.op in OPS


# -- extract_answer --------------------------------------------------------------------------------------
ANSWERS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ,'-]{0,20}[A-Za-z0-9]", fullmatch=True)
PROSE = st.text(st.characters(blacklist_characters=":\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                              blacklist_categories=("Cs",)), max_size=60)


@given(before=st.lists(PROSE, max_size=4), answer=ANSWERS, after=st.lists(PROSE, max_size=3),
       marker=st.sampled_from(["ANSWER:", "Answer:", "**ANSWER:**", "answer :", "- ANSWER:"]))
def test_extract_answer_finds_the_last_answer_line(before, answer, after, marker):
    assume(all("answer" not in line.lower() for line in before + after))
    text = "\n".join([*before, f"{marker} first", f"{marker} {answer}", *after])
    assert extract_answer(text) == answer.strip()


@given(PROSE)
def test_no_answer_marker_means_none(text):
    assume("answer" not in text.lower())
    assert extract_answer(text) is None


# -- the judges' strict JSON reader ---------------------------------------------------------------------
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@given(obj=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4), fence=st.booleans(),
       ws=st.sampled_from(["", "\n", "  \n"]))
def test_json_object_reads_one_object_fenced_or_not(obj, fence, ws):
    body = json.dumps(obj)
    text = f"{ws}```json\n{body}\n```{ws}" if fence else f"{ws}{body}{ws}"
    assert json_object(text) == obj


@given(st.one_of(JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(json.dumps), st.text(max_size=30)))
def test_json_object_refuses_anything_but_one_object(text):
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    assume(not isinstance(data, dict))
    with pytest.raises(JudgeParseError):
        json_object(text)


# -- engine plans -----------------------------------------------------------------------------------------
PROMPTS = st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=8), min_size=1, max_size=12).flatmap(
    lambda tails: st.lists(st.integers(0, 3), min_size=len(tails), max_size=len(tails)).map(
        lambda heads: [[7] * (MIN_SHARED + h * 3) + t for h, t in zip(heads, tails)]))


@settings(max_examples=60)
@given(st.one_of(PROMPTS, st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=40), min_size=1, max_size=10)))
@example([[1] * MIN_SHARED, [1] * MIN_SHARED])  # found by CI: identical prompts of MIN_SHARED tokens shared one fewer
def test_prefix_plan_invariants(prompts):
    order, plen, carriers, carrier_of = prefix_plan(prompts)
    assert sorted(order) == list(range(len(prompts)))
    for i, p in enumerate(prompts):
        c = carrier_of[i]
        if c < 0:
            assert plen[i] == 0
            continue
        assert plen[i] == len(carriers[c]) and MIN_SHARED <= plen[i] < len(p)  # never the whole prompt
        assert tuple(p[:plen[i]]) == carriers[c]  # the carrier is read whole
    assert all(any(c == k for c in carrier_of) for k in range(len(carriers)))  # no carrier without a reader


@settings(max_examples=60)
@given(PROMPTS)
def test_carrier_tree_parents_are_prefixes(prompts):
    _, _, carriers, _ = prefix_plan(prompts)
    allc, plen, parent = carrier_tree(carriers)
    assert allc[:len(carriers)] == list(carriers)
    for i, c in enumerate(allc):
        if parent[i] < 0:
            assert plen[i] == 0
        else:
            par = allc[parent[i]]
            assert plen[i] == len(par) and 0 < plen[i] < len(c) and c[:plen[i]] == par
            assert parent[i] >= len(carriers)  # parents are the added roots


# -- the episode record ----------------------------------------------------------------------------------
TEXT = st.text(max_size=30)
VERDICTS = st.builds(Verdict, status=st.sampled_from(["passed", "failed", "unscored", "error"]), expected=TEXT,
                     extracted=st.none() | TEXT, judge=TEXT, rationale=TEXT, format_ok=st.booleans(), reason=TEXT,
                     score=st.none() | st.floats(0, 1), detail=st.dictionaries(TEXT, st.integers(), max_size=3))
EPISODES = st.builds(Episode, student=TEXT, condition=st.sampled_from(["baseline", "curated", "probe"]),
                     task_uid=TEXT, skill=TEXT, query_type=TEXT, response=st.none() | TEXT, verdict=VERDICTS,
                     category=TEXT, nodeid=TEXT, gen_tokens=st.none() | st.integers(0, 10_000),
                     extra=st.dictionaries(TEXT, st.integers() | TEXT, max_size=3))


@given(EPISODES)
def test_episode_round_trips_through_json(ep):
    d = json.loads(json.dumps(ep.to_dict(), ensure_ascii=False))
    back = Episode.from_dict(d)
    assert back == ep
    assert back.to_dict() == ep.to_dict()


# -- fast text scans == their plain forms ---------------------------------------------------------------
SLOP = sorted(load_slop_phrases(), key=len, reverse=True)
PLAIN_SLOP = re.compile(r"(?<![\w'])(?:" + "|".join(re.escape(p) for p in SLOP) + r")(?![\w'])", re.I)
PIECES = st.sampled_from(SLOP + [p.upper() for p in SLOP] + ["skill", "SKILL block", "the procedure steps", "x",
                                                            " ", "\n", ".", "'", "’", "a", "I", "step 2 of the skill",
                                                            "I'm sorry, but I can't", "as an AI I cannot", "I must decline",
                                                            "I am not able to help", "I will not provide that"])
LONGISH = st.lists(PIECES | st.text(max_size=6), max_size=30).map("".join)


@settings(max_examples=200)
@given(LONGISH)
def test_slop_scan_finds_what_the_plain_alternation_finds(text):
    assert slop_hits(text) == [m.group(0).lower() for m in PLAIN_SLOP.finditer(_norm_quotes(text))]


@settings(max_examples=200)
@given(LONGISH)
@example("\u017fkill block")  # long s: IGNORECASE folds it to s, str.lower() does not
@example("sk\u0131ll steps")  # dotless i
@example("SK\u0130LL block")  # capital I with dot
def test_phantom_precheck_skips_only_texts_no_pattern_matches(text):
    plain = any(p.search(text) for p in _PHANTOM_PATTERNS)
    if plain:
        assert _PHANTOM_WORD.search(text), f"a pattern matched a text the pre-check skips: {text!r}"
    else:
        assert phantom_skill_mention(text) is None


@settings(max_examples=200)
@given(LONGISH)
def test_one_refusal_scan_equals_the_five_patterns(text):
    assert is_refusal(text) == any(p.search(_norm_quotes(text)) for p in _REFUSAL)


def test_an_empty_slop_list_matches_nothing(tmp_path):
    empty = tmp_path / "slop.txt"
    empty.write_text("# no phrases\n", encoding="utf-8")
    assert slop_hits("I hope this helps", str(empty)) == []
