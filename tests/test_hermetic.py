"""The suite is hermetic: caches go to the session's temporary directory, never to the user's."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import USER_CACHE_ENV
from pytest_skillbench.students.embedded import default_cache_dir


def _user_cache() -> Path:
    """Where the plugin would cache for the user who started the tests."""
    if USER_CACHE_ENV["SKILLBENCH_CACHE"]:
        return Path(USER_CACHE_ENV["SKILLBENCH_CACHE"])
    return Path(USER_CACHE_ENV["XDG_CACHE_HOME"] or Path.home() / ".cache") / "pytest-skillbench"


def test_default_cache_and_xdg_cache_are_the_session_s_temporary_dirs(hermetic_caches, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    assert default_cache_dir() == hermetic_caches["SKILLBENCH_CACHE"]
    assert Path(os.environ["XDG_CACHE_HOME"]) == hermetic_caches["XDG_CACHE_HOME"]
    for path in (default_cache_dir(), Path(os.environ["XDG_CACHE_HOME"])):
        assert base in path.parents
        assert path.resolve() != _user_cache().resolve()


def _listing(path: Path) -> set[Path]:
    return set(path.rglob("*")) if path.is_dir() else set()


def test_a_plugin_run_without_a_cache_option_caches_into_the_temporary_dir(pytester, hermetic_caches):
    """A real run in a pytest subprocess (which inherits the environment) with a served student: its
    generations are cached, into the session's directory, and the user's cache gains nothing."""
    from chat_students import BenchStudent
    from loopback import Loopback

    from pytest_skillbench.bench import load_bench

    cache = hermetic_caches["SKILLBENCH_CACHE"]
    user_before, ours_before = _listing(_user_cache()), _listing(cache)
    with Loopback(BenchStudent(load_bench("bundled").split("holdout"))) as lb:
        pytester.makepyprojecttoml(f'[tool.skillbench.students."served"]\nbackend = "openai"\n'
                                   f'base_url = "{lb.url}/v1"\nmodel = "m"\n')
        res = pytester.runpytest_subprocess("-p", "no:randomly", "-q", "--student", "served", "-k", "modus_ponens")
    assert res.ret in (0, 1), res.stdout.str()
    new = {p for p in _listing(cache) - ours_before if p.is_file()}
    assert any("generations" in p.parts for p in new)
    assert _listing(_user_cache()) == user_before
