"""The backend registries (``pytest_skillbench/backends.py``): names, clear errors, lazy imports, and that a
new backend is one factory + one registration, seen by validation and by the session's factory call."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pytest_skillbench.backends import JUDGE_BACKENDS, STUDENT_BACKENDS, Registry
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.judges.runner import make_backend
from pytest_skillbench.settings import JUDGE_BACKENDS as JUDGE_CHOICES
from pytest_skillbench.settings import Settings
from pytest_skillbench.students.base import Backend
from pytest_skillbench.students.registry import resolve_student


class EchoBackend(Backend):
    """A backend defined outside the package, registered by name only."""

    needs_generation = True

    def __init__(self, spec, max_new_tokens: int):
        self.spec = spec
        self.max_new_tokens = max_new_tokens


def build_echo(spec, session) -> EchoBackend:
    return EchoBackend(spec, session.settings.max_new_tokens)


def test_registered_names_in_order():
    assert STUDENT_BACKENDS.names() == ("hf", "replay", "openai", "anthropic")
    assert STUDENT_BACKENDS.names("served") == ("openai", "anthropic")
    assert JUDGE_BACKENDS.names() == ("anthropic", "openai", "hf")
    assert JUDGE_CHOICES == JUDGE_BACKENDS.names()  # the --judge-backend choices come from the registry


def test_unknown_student_backend_is_one_clear_error(tmp_path):
    with pytest.raises(SkillbenchError) as err:
        resolve_student("s", {"s": {"backend": "vllm", "model": "m"}}, tmp_path)
    assert str(err.value) == ('[tool.skillbench.students."s"]: backend \'vllm\' is not one of '
                              "hf, replay, openai, anthropic")


def test_unknown_judge_backend_is_one_clear_error():
    s = Settings()
    s.judge_backend = "bogus"
    with pytest.raises(SkillbenchError, match=r"^--judge-backend 'bogus' is not one of anthropic, openai, hf$"):
        make_backend(s)


def test_a_new_backend_is_one_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(STUDENT_BACKENDS, "_entries", dict(STUDENT_BACKENDS._entries))
    STUDENT_BACKENDS.register("echo", f"{__name__}:build_echo", "served")
    spec = resolve_student("e", {"e": {"backend": "echo", "adapter": "v2", "model": "m"}}, tmp_path)
    assert spec.adapter == "v2"  # a served backend's adapter is a name, not resolved against the root
    session = SimpleNamespace(settings=SimpleNamespace(max_new_tokens=77))
    be = STUDENT_BACKENDS.create("echo", spec, session, where="student 'e': backend")
    assert isinstance(be, EchoBackend) and be.max_new_tokens == 77 and be.spec is spec
    assert "echo" in STUDENT_BACKENDS.names() and "echo" in STUDENT_BACKENDS.names("served")


def test_a_builtin_factory_builds_the_backend(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"task_uid": "x", "condition": "baseline", "response": "ANSWER: yes"}) + "\n")
    spec = resolve_student(f"replay:{path}", {}, tmp_path)
    be = STUDENT_BACKENDS.create(spec.backend, spec, SimpleNamespace(), where="student 'r': backend")
    assert type(be).__name__ == "ReplayBackend" and be.spec is spec


def test_factory_must_name_module_and_attribute():
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        Registry("student").register("x", "some.module")


def test_registries_import_no_heavy_module():
    """Validating students and listing backends must not import torch/transformers (the factories do, later)."""
    code = ("import sys; import pytest_skillbench.backends as b, pytest_skillbench.students.registry, "
            "pytest_skillbench.settings; b.STUDENT_BACKENDS.factory('replay', 'x'); "
            "b.STUDENT_BACKENDS.factory('openai', 'x'); "
            "print([m for m in ('torch', 'transformers', 'peft', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
