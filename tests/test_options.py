"""Options are declared once (``settings.Settings`` fields) and every one is documented in ``pytest --help``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.settings import Settings, build_settings, option_specs

# The command-line interface users and scripts rely on: flag -> dest. It must not drift.
FLAGS = {
    "--student": "skillbench_student", "--condition": "skillbench_condition", "--judge": "skillbench_judge",
    "--bench": "skillbench_bench", "--catalog": "skillbench_catalog", "--split": "skillbench_split",
    "--max-new-tokens": "skillbench_max_new_tokens", "--batch-size": "skillbench_batch_size",
    "--device": "skillbench_device", "--dtype": "skillbench_dtype",
    "--repetition-penalty": "skillbench_repetition_penalty", "--skillbench-cache": "skillbench_cache",
    "--skillbench-json": "skillbench_json", "--skillbench-episodes": "skillbench_episodes",
    "--skillbench-run-dir": "skillbench_run_dir", "--skillbench-html": "skillbench_html",
    "--skillbench-seed": "skillbench_seed", "--thinking": "skillbench_thinking",
    "--judge-backend": "skillbench_judge_backend", "--judge-model": "skillbench_judge_model",
    "--judge-concurrency": "skillbench_judge_concurrency", "--judge-base-url": "skillbench_judge_base_url",
    "--judge-api-key-env": "skillbench_judge_api_key_env", "--judge-timeout": "skillbench_judge_timeout",
    "--judge-max-attempts": "skillbench_judge_max_attempts", "--judge-backoff": "skillbench_judge_backoff",
    "--judge-max-tokens": "skillbench_judge_max_tokens", "--skillbench-rejudge": "skillbench_rejudge",
    "--sft-pair": "skillbench_sft_pair", "--allow-path-mismatch": "skillbench_allow_path_mismatch",
    "--gate": "skillbench_gate", "--gate-against": "skillbench_gate_against",
    "--gate-margin": "skillbench_gate_margin", "--probe": "skillbench_probe", "--pairwise": "skillbench_pairwise",
    "--rubric": "skillbench_rubric", "--answer-forcing": "skillbench_answer_forcing",
    "--scoring": "skillbench_scoring",
}


@pytest.fixture(scope="module")
def help_entries(tmp_path_factory) -> dict[str, str]:
    """``pytest --help``'s skillbench group: flag -> its whole entry (metavar, help, default)."""
    res = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
                         cwd=tmp_path_factory.mktemp("help"), capture_output=True, text=True, check=True)
    group = res.stdout.split("pytest-skillbench: evaluate students on procedural skills:")[1]
    group = group.split("\n\n")[0]
    entries: dict[str, str] = {}
    for chunk in re.split(r"\n(?=  --)", group.strip("\n")):
        flag = re.match(r"\s*(--[\w-]+)", chunk).group(1)
        entries[flag] = " ".join(chunk.split())
    return entries


def test_flags_and_dests_are_unchanged():
    assert {o.flag: o.dest for o in option_specs()} == FLAGS


def test_every_option_in_help_has_text_and_its_default(help_entries):
    assert set(help_entries) == set(FLAGS)
    for flag, entry in help_entries.items():
        text = entry[len(flag):].lstrip("=").split(" ", 1)[1] if " " in entry else ""
        assert len(text) > 20, (flag, entry)  # more than a metavar
        assert re.search(r"\(default: [^)]+\)", entry), (flag, entry)
    assert "(default: 512)" in help_entries["--max-new-tokens"]
    assert "(default: 16)" in help_entries["--batch-size"]
    assert "(default: 1.05)" in help_entries["--repetition-penalty"]
    assert "(default: 20251122)" in help_entries["--skillbench-seed"]
    assert "(default: holdout)" in help_entries["--split"]


def test_every_option_is_a_pyproject_key_under_its_own_name(tmp_path):
    """``[tool.skillbench]`` takes each option's own name (``skillbench-seed``, ``max-new-tokens``)."""
    default = Settings()
    for o in option_specs():
        value = {"list": [o.choices[-1]] if o.choices else ["x"], "bool": True, "int": 3, "float": 0.5,
                 "str": o.choices[-1] if o.choices else "x"}[o.kind]
        if o.choices and value in (getattr(default, o.field), [getattr(default, o.field)]):
            value = o.choices[0] if o.kind == "str" else [o.choices[0]]
        toml = f"{value!r}".replace("'", '"').replace("True", "true")
        (tmp_path / "pyproject.toml").write_text(f"[tool.skillbench]\n{o.flag.lstrip('-')} = {toml}\n")
        s = build_settings({}, tmp_path)
        assert getattr(s, o.field) != getattr(default, o.field), o.flag


def test_choices_hold_for_pyproject_values_too(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.skillbench]\nthinking = "maybe"\n')
    with pytest.raises(SkillbenchError, match="--thinking 'maybe' is not one of keep, strip, disable"):
        build_settings({}, tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.skillbench]\ncondition = ["curated", "other"]\n')
    with pytest.raises(SkillbenchError, match="--condition 'other' is not one of baseline, curated"):
        build_settings({}, tmp_path)


def test_a_field_made_with_opt_is_an_option_and_a_plain_field_is_not():
    names = {o.field for o in option_specs()}
    assert "resamples" not in names and "students" not in names
    assert {o.kind for o in option_specs() if o.field in ("student", "pairwise", "seed", "gate_margin")} == \
        {"list", "bool", "int", "float"}
