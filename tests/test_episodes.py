"""Episode serialisation: to_dict is a full, independent, JSON-ready copy in field order (like asdict)."""

from __future__ import annotations

import json
from dataclasses import asdict

from pytest_skillbench.episodes import Episode, Verdict, read_episodes, write_episodes


def _episode() -> Episode:
    v = Verdict(status="failed", expected="yes", extracted="no", judge="deterministic", rationale="r",
                format_ok=True, detail={"criteria": [1, {"hit": (2, 3)}]})
    return Episode(student="s", condition="curated", task_uid="t1", skill="modus-ponens", query_type="YES_NO",
                   response="ANSWER: no", verdict=v, gen_tokens=7, extra={"rep4": [0.1, 0.2], "d": {"x": {"y": [3]}}})


def test_to_dict_matches_asdict_and_is_a_copy():
    ep = _episode()
    d = ep.to_dict()
    full = asdict(ep)
    # a strict-only verdict leaves out the answer-forcing fields at their defaults (files stay as before)
    assert (full["verdict"].pop("scoring"), full["verdict"].pop("extra")) == ("strict", {})
    assert d == full and list(d) == list(full)
    d["extra"]["rep4"].append(9.0)
    d["verdict"]["detail"]["criteria"].append(0)
    assert ep.extra["rep4"] == [0.1, 0.2] and ep.verdict.detail["criteria"] == [1, {"hit": (2, 3)}]


def test_round_trip_through_a_file(tmp_path):
    ep = _episode()
    path = tmp_path / "eps.jsonl"
    write_episodes(path, [ep])
    back = read_episodes(path)[0]
    assert back.to_dict() == json.loads(json.dumps(ep.to_dict()))


def test_forced_verdict_fields_round_trip(tmp_path):
    ep = _episode()
    ep.verdict.scoring = "forced"
    ep.verdict.extra = {"forced": {"answer": "no", "logprobs": {"yes": -2.0, "no": -0.5}, "margin": 1.5}}
    write_episodes(tmp_path / "e.jsonl", [ep])
    back = read_episodes(tmp_path / "e.jsonl")[0]
    assert back.verdict.scoring == "forced" and back.verdict.extra == ep.verdict.extra


def test_a_response_with_unicode_line_separators_round_trips(tmp_path):
    """str.splitlines() also breaks at U+2028/U+2029, which json.dumps(ensure_ascii=False) writes raw."""
    ep = _episode()
    ep.response = "first\u2028second\u2029third\nANSWER: no"
    write_episodes(tmp_path / "e.jsonl", [ep, _episode()])
    back = read_episodes(tmp_path / "e.jsonl")
    assert len(back) == 2 and back[0].response == ep.response
