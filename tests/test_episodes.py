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
    assert d == asdict(ep) and list(d) == list(asdict(ep))
    d["extra"]["rep4"].append(9.0)
    d["verdict"]["detail"]["criteria"].append(0)
    assert ep.extra["rep4"] == [0.1, 0.2] and ep.verdict.detail["criteria"] == [1, {"hit": (2, 3)}]


def test_round_trip_through_a_file(tmp_path):
    ep = _episode()
    path = tmp_path / "eps.jsonl"
    write_episodes(path, [ep])
    back = read_episodes(path)[0]
    assert back.to_dict() == json.loads(json.dumps(ep.to_dict()))
