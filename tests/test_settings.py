"""Settings: values from pyproject.toml and the command line arrive with their field's real type."""

from __future__ import annotations

import pytest

from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.settings import build_settings


def _project(tmp_path, body: str):
    (tmp_path / "pyproject.toml").write_text(f"[tool.skillbench]\n{body}\n")
    return tmp_path


def test_optional_int_from_pyproject_is_an_int(tmp_path):
    s = build_settings({}, _project(tmp_path, "judge-max-tokens = 300"))
    assert s.judge_max_tokens == 300 and type(s.judge_max_tokens) is int


def test_optional_int_from_an_ini_style_string_is_an_int(tmp_path):
    s = build_settings({"judge_max_tokens": "256"}, _project(tmp_path, ""))
    assert s.judge_max_tokens == 256 and type(s.judge_max_tokens) is int


def test_optional_str_and_plain_types(tmp_path):
    s = build_settings({"max_new_tokens": "64", "repetition_penalty": "1.1", "device": "cpu",
                        "condition": "curated"}, _project(tmp_path, "gate-margin = 1"))
    assert (s.max_new_tokens, s.repetition_penalty, s.device, s.condition) == (64, 1.1, "cpu", ["curated"])
    assert type(s.gate_margin) is float and s.gate_margin == 1.0
    assert s.judge_max_tokens is None  # an optional field left unset stays None


@pytest.mark.parametrize("body", ['judge-max-tokens = "many"', "judge-max-tokens = true", "seed = 1.5",
                                  "device = [1, 2]"])
def test_wrong_type_is_one_error_naming_the_field(tmp_path, body):
    with pytest.raises(SkillbenchError) as exc:
        build_settings({}, _project(tmp_path, body))
    assert body.split(" =")[0].replace("-", "_") in str(exc.value)
    assert "pyproject.toml" in str(exc.value)
