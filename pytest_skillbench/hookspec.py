"""Hooks pytest-skillbench offers to a project's ``conftest.py`` (registered through ``pytest_addhooks``)."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_skillbench_judge(task, response, condition, config):
    """Judge one episode with the project's own judge.

    ``task`` is the ``pytest_skillbench.bench.Task`` (``task_uid``, ``skill``, ``query_type``, ``passage``,
    ``question``, ``answer``, ``must_identify``, ...), ``response`` the student's text (after the thinking
    policy), ``condition`` ``"baseline"`` or ``"curated"``, ``config`` the pytest config.

    Return a ``pytest_skillbench.episodes.Verdict``, a dict of its fields (``status`` one of passed |
    failed | unscored | error, or ``passed: bool``; ``judge`` names your judge and defaults to ``"hook"``),
    or ``None`` to leave the episode to the built-in judge of ``--judge``. The first non-None result wins.
    Not called for episodes without a response (generation errors).
    """
