"""The offline judge: the same judge prompt on a local transformers model, batched, no network.

``--judge-backend hf --judge-model NAME_OR_PATH`` takes what ``--student`` takes for a local model: the
embedded ``smollm2-135m`` (the default), a registered student, a model or adapter directory, or a hub id.
Generation is greedy and batched through the student machinery (``students.hf.HFBackend``), sharing the
session's model pool, so a judge that is also a student loads once. Its output is read exactly as strictly
as an API judge's.
"""

from __future__ import annotations

from pathlib import Path

from ..episodes import Reason
from ..errors import SkillbenchError
from ..students.base import GenRequest
from ..students.embedded import EMBEDDED_NAME
from ..students.hf import HFBackend, ModelPool
from ..students.registry import StudentSpec, resolve_student
from .api import JudgeCallError, Progress

DEFAULT_MODEL = EMBEDDED_NAME


class HFJudge:
    name = "hf"

    def __init__(self, model: str | None = None, *, pool=None, registry: dict | None = None, root: Path | None = None,
                 batch_size: int = 16, max_new_tokens: int = 384, device: str | None = None, dtype: str | None = None,
                 cache_dir=None):
        self.model = model or DEFAULT_MODEL
        root = Path(root or ".")
        try:
            spec = resolve_student(self.model, registry or {}, root)
        except SkillbenchError:
            if Path(self.model).exists():
                raise
            spec = StudentSpec(name=self.model, backend="hf", base=self.model, origin="hub")  # a hub id
        if spec.backend != "hf":
            raise SkillbenchError(f"--judge-model {self.model!r} is not a local model (backend {spec.backend})")
        spec.thinking = spec.thinking if spec.thinking != "keep" else "disable"
        self.spec = spec
        self._pool = pool  # a ModelPool, or a callable returning one (the session's, created lazily)
        self._opts = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "device": device,
                      "dtype": dtype, "repetition_penalty": 1.0, "cache_dir": cache_dir}
        self._backend = None
        self.concurrency = 1
        self.requests = 0

    @property
    def backend(self):
        if self._backend is None:
            pool = self._pool() if callable(self._pool) else self._pool
            self._backend = HFBackend(self.spec, pool or ModelPool(self._opts["cache_dir"]), **self._opts)
        return self._backend

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model}"

    def identity(self) -> dict:
        return {"backend": self.name, "model": self.model, "fingerprint": self.backend.fingerprint()}

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "path": self.backend.path_info()}

    def complete(self, prompts: list[list[dict[str, str]]], progress: Progress | None = None
                 ) -> list[str | JudgeCallError]:
        if not prompts:
            return []
        reqs = [GenRequest(task_uid=str(i), condition="judge", messages=m) for i, m in enumerate(prompts)]
        self.requests += len(reqs)
        try:
            results = self.backend.generate(reqs, progress=(lambda d, t, _tok: progress(d, t)) if progress else None)
        except SkillbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken local judge is infrastructure: error, not failed
            msg = f"local judge failed: {type(exc).__name__}: {exc}"
            return [JudgeCallError(msg, Reason.JUDGE_UNAVAILABLE, 1) for _ in prompts]
        return [r.text if r is not None and r.text is not None
                else JudgeCallError((r.error if r else None) or "no output", Reason.JUDGE_UNAVAILABLE, 1)
                for r in results]


def build(settings, *, cache_dir=None, pool=None, root: Path | None = None) -> HFJudge:
    """The ``hf`` entry of ``backends.JUDGE_BACKENDS``: a local model judge sharing the session's pool."""
    return HFJudge(settings.judge_model, pool=pool, registry=settings.students, root=root,
                   batch_size=settings.batch_size, device=settings.device, dtype=settings.dtype,
                   cache_dir=cache_dir, max_new_tokens=settings.judge_max_tokens or 384)
