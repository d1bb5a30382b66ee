"""Student behaviours for ``tests/loopback.py``: a served "model" answering bench prompts deterministically.

``BenchStudent(tasks)`` answers each prompt from the bench's gold answers: right with probability
``p_right`` (higher in the curated condition), the wrong answer otherwise, and without an ANSWER line
with probability ``p_miss``, all decided by a hash of (served model, condition, task) -- never by arrival
order, so any number of workers and any concurrency give the same answers. It also tracks the requests
in flight (``max_in_flight``) and can fail scripted tasks.
"""

from __future__ import annotations

import hashlib
import threading
import time

from loopback import Ok, Request, Status

from pytest_skillbench.prompts import user_prompt


def _u(*parts: str) -> float:
    h = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return int(h[:12], 16) / float(16 ** 12)


class BenchStudent:
    def __init__(self, tasks, *, p_right: float = 0.55, curated_bonus: float = 0.15, p_miss: float = 0.1,
                 fail: dict | None = None, delay: float = 0.0):
        self.delay = delay  # seconds per answer, counted as in flight (unlike Loopback's own delay)
        self.by_prompt = {user_prompt(t): t for t in tasks}
        self.p_right = p_right
        self.curated_bonus = curated_bonus
        self.p_miss = p_miss
        self.fail = fail or {}  # task_uid -> callable(Request) -> reply or None
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def answer_text(self, model: str, curated: bool, task) -> str:
        cond = "curated" if curated else "baseline"
        if _u(model, cond, task.task_uid, "miss") < self.p_miss:
            return "I think about it but I am not sure."
        right = _u(model, cond, task.task_uid) < self.p_right + (self.curated_bonus if curated else 0.0)
        if right:
            ans = task.answer
        elif task.query_type == "YES_NO":
            ans = "no" if task.answer.strip().lower() == "yes" else "yes"
        else:
            ans = "zzz"
        return f"Step 1 - read the passage.\nANSWER: {ans}"

    def __call__(self, req: Request):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            task = self.by_prompt.get(req.prompt)
            if task is None:
                return Status(400, message="unknown prompt")
            hook = self.fail.get(task.task_uid)
            if hook is not None:
                reply = hook(req)
                if reply is not None:
                    return reply
            model = str(req.body.get("model") or "")
            return Ok(self.answer_text(model, "--- SKILL:" in req.system, task))
        finally:
            with self.lock:
                self.in_flight -= 1
