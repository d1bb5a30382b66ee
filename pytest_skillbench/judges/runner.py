"""Judging a batch of episodes: judge modes, the judge hook, the judgment cache, concurrent LLM calls.

Modes (``--judge``):

* ``deterministic`` - the ANSWER-line judge only;
* ``deterministic-mixed`` - FREE_FORM tasks go to the LLM judge, YES_NO / SINGLE_WORD / RANKING stay
  deterministic;
* ``llm-only`` - every task goes to the LLM judge;
* ``both`` - every task gets both verdicts: the LLM verdict is the episode's verdict (statistics use it),
  the deterministic one is kept in ``Episode.extra["verdicts"]`` and the report lists where they disagree.

A ``pytest_skillbench_judge`` hook implementation that returns a verdict takes precedence in every mode.

``prepare(items)`` judges a whole batch ahead of the items that consume it: cache hits first, then one
concurrent wave of LLM calls (at most ``--judge-concurrency`` in flight). ``outcome(...)`` then answers
per item without blocking. Only scored LLM verdicts (passed / failed) are cached, keyed by backend, model,
judge prompt version and hash, task_uid and response hash; ``error`` and ``unscored`` are never cached, so a
rejudge asks the judge again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..backends import JUDGE_BACKENDS
from ..bench.tasks import Task
from ..cache import Store, key_of
from ..episodes import SCORED, STATUSES, Reason, Status, Verdict
from ..errors import SkillbenchError
from ..students.embedded import default_cache_dir
from . import deterministic, llm
from .api import JudgeCallError

LLM_MODES = ("deterministic-mixed", "llm-only", "both")

# (task, response, condition) -> Verdict | dict | None
JudgeHook = Callable[[Task, str, str], object]


@dataclass(frozen=True)
class JudgeItem:
    task: Task
    response: str | None
    condition: str


def make_backend(settings, *, cache_dir=None, pool=None, root: Path | None = None):
    """The LLM judge backend named by the settings (validates credentials; loads no model)."""
    return JUDGE_BACKENDS.create(settings.judge_backend, settings, cache_dir=cache_dir, pool=pool, root=root,
                                 where="--judge-backend")


def build_runner(settings, *, root: Path | None = None, pool=None, cache_dir=None, write=None,
                 hook: JudgeHook | None = None) -> JudgeRunner:
    """The session's (or ``skillbench rejudge``'s) judge runner; one clear error for a bad judge set-up."""
    cache_dir = Path(cache_dir or settings.cache or default_cache_dir())
    backend = None
    if settings.judge in LLM_MODES:
        backend = make_backend(settings, cache_dir=cache_dir, pool=pool, root=root)
    store = Store(cache_dir, "judgments") if backend is not None else None
    return JudgeRunner(settings.judge, backend, store=store, hook=hook, write=write)


def hook_verdict(value: object, task: Task) -> Verdict | None:
    """A hook's return value as a Verdict: a ``Verdict``, a dict of its fields, or None (no opinion)."""
    if value is None:
        return None
    if isinstance(value, Verdict):
        v = value
    elif isinstance(value, dict):
        d = dict(value)
        d.setdefault("judge", "hook")
        d.setdefault("expected", task.answer)
        if "status" not in d and isinstance(d.get("passed"), bool):
            d["status"] = Status.PASSED if d["passed"] else Status.FAILED
        v = Verdict.from_dict(d) if "status" in d else Verdict(status="", judge=d["judge"])
    else:
        return Verdict(status=Status.ERROR, expected=task.answer, judge="hook",
                       reason=Reason.JUDGE_HOOK_INVALID,
                       rationale=f"pytest_skillbench_judge returned {type(value).__name__}, not a Verdict or dict")
    if v.status not in STATUSES:
        return Verdict(status=Status.ERROR, expected=task.answer, judge=v.judge or "hook",
                       reason=Reason.JUDGE_HOOK_INVALID,
                       rationale=f"pytest_skillbench_judge returned status {v.status!r} (one of {', '.join(STATUSES)})")
    if not v.expected:
        v.expected = task.answer
    return v


class JudgeRunner:
    def __init__(self, mode: str, backend=None, *, store: Store | None = None, hook: JudgeHook | None = None,
                 write: Callable[[str], None] | None = None):
        if mode != "deterministic" and mode not in LLM_MODES:
            raise SkillbenchError(f"unknown judge mode {mode!r}")
        if mode in LLM_MODES and backend is None:
            raise SkillbenchError(f"--judge {mode} needs an LLM judge backend")
        self.mode = mode
        self.backend = backend
        self.store = store
        self.hook = hook
        self.write = write or (lambda s: None)
        self._llm: dict[str, Verdict] = {}
        self._hooked: dict[tuple, Verdict | None] = {}
        self.cache_hits = 0
        self.judged = 0
        self.rejudged_from: str | None = None

    # -- what goes where -----------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.backend.label if self.backend is not None else deterministic.JUDGE_NAME

    def needs_llm(self, task: Task) -> bool:
        if self.mode in ("llm-only", "both"):
            return True
        return self.mode == "deterministic-mixed" and task.query_type == "FREE_FORM"

    def describe(self) -> dict:
        d = {"mode": self.mode, "prompt_version": llm.JUDGE_PROMPT_VERSION if self.backend else None,
             "prompt_hash": llm.judge_prompt_hash() if self.backend else None}
        if self.backend is not None:
            d.update(self.backend.describe())
        else:
            d.update({"backend": "deterministic", "model": None})
        if self.rejudged_from:
            d["rejudged_from"] = self.rejudged_from
        return d

    def cache_key(self, task: Task, response: str) -> str:
        return key_of({"kind": "judgment", **self.backend.identity(), "prompt_version": llm.JUDGE_PROMPT_VERSION,
                       "prompt_hash": llm.judge_prompt_hash(), "task_uid": task.task_uid,
                       "response": llm.response_hash(response)})

    # -- batch ---------------------------------------------------------------------------------------
    def _hook_for(self, item: JudgeItem) -> Verdict | None:
        k = (item.task.task_uid, item.condition, llm.response_hash(item.response))
        if k not in self._hooked:
            self._hooked[k] = None if self.hook is None else hook_verdict(
                self.hook(item.task, item.response, item.condition), item.task)
        return self._hooked[k]

    def prepare(self, items: list[JudgeItem], label: str = "") -> None:
        """Judge every item that needs the LLM judge, concurrently, before any item asks for its verdict."""
        pending: dict[str, JudgeItem] = {}
        for it in items:
            if it.response is None or self._hook_for(it) is not None or not self.needs_llm(it.task):
                continue
            key = self.cache_key(it.task, it.response)
            if key in self._llm or key in pending:
                continue
            hit = self.store.get(key) if self.store is not None else None
            if hit is not None and hit.get("verdict", {}).get("status") in SCORED:
                self._llm[key] = Verdict.from_dict(hit["verdict"])
                self.cache_hits += 1
                continue
            pending[key] = it
        if not pending:
            return
        keys = list(pending)
        who = f" of {label}" if label else ""
        self.write(f"[skillbench] judging {len(keys)} episode(s){who} with {self.label} "
                   f"(concurrency {getattr(self.backend, 'concurrency', 1)})")
        t0 = time.perf_counter()
        last = [t0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if done < total and now - last[0] < 2.0:
                return
            last[0] = now
            self.write(f"[skillbench] {self.label}: {done}/{total} judged, elapsed {now - t0:.0f}s")

        outputs = self.backend.complete([llm.build_messages(pending[k].task, pending[k].response) for k in keys],
                                        progress=progress)
        counts = {s: 0 for s in STATUSES}
        for key, out in zip(keys, outputs):
            it = pending[key]
            if isinstance(out, JudgeCallError):
                v = llm.error_verdict(it.task, it.response, self.label, out.message, out.reason)
            else:
                v = llm.verdict_from_output(it.task, it.response, out, self.label)
                if v.scored and self.store is not None:
                    self.store.put(key, {"verdict": v.to_dict(), "task_uid": it.task.task_uid, "raw": out,
                                         "judge": self.label, "prompt_version": llm.JUDGE_PROMPT_VERSION})
            counts[v.status] += 1
            self._llm[key] = v
        self.judged += len(keys)
        err, uns = counts[Status.ERROR], counts[Status.UNSCORED]
        bad = f" ({err} error, {uns} unscored)" if err or uns else ""
        self.write(f"[skillbench] {self.label}: judged {len(keys)} in {time.perf_counter() - t0:.1f}s{bad}")

    # -- per item ------------------------------------------------------------------------------------
    def outcome(self, task: Task, response: str | None, condition: str) -> tuple[Verdict, dict]:
        """(the episode's verdict, extra fields for ``Episode.extra``)."""
        item = JudgeItem(task, response, condition)
        if response is None:
            return Verdict(status=Status.ERROR, expected=task.answer, judge="none", rationale="no response",
                           reason=Reason.GENERATION_ERROR), {}
        hooked = self._hook_for(item)
        det = deterministic.judge(task, response)
        if hooked is not None:
            primary = hooked
        elif not self.needs_llm(task):
            primary = det
        else:
            key = self.cache_key(task, response)
            if key not in self._llm:
                self.prepare([item])
            primary = self._llm[key]
        extra = {}
        if self.mode == "both":
            extra["verdicts"] = {"primary": primary.judge, "llm": primary.to_dict(), "deterministic": det.to_dict()}
        return primary, extra
