"""Batched, cached generation for one student: look up the cache, generate only what is missing.

Each finished answer is written to the cache as soon as its batch ends, so a killed run loses at most the
batch in flight and the same command resumes where it stopped.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from .cache import Store, key_of
from .students.base import Backend, GenRequest, GenResult


def request_key(fingerprint: dict, req: GenRequest, bench_version: str | None = None) -> str:
    """The generation cache key. ``bench_version`` (``v2``, ``external``) is part of it, except for ``v1``
    (and None), whose keys stay those of runs made before bench v2 so their caches still serve
    ``--bench bundled-v1``."""
    if bench_version in (None, "v1"):
        return key_of({"fp": fingerprint, "messages": req.messages})
    return key_of({"fp": fingerprint, "messages": req.messages, "bench": bench_version})


class ProgressPrinter:
    """done/total, tokens/s and ETA on one line, at most every ``every`` seconds."""

    def __init__(self, label: str, write: Callable[[str], None] | None = None, every: float = 2.0):
        self.label = label
        self.write = write or (lambda s: (sys.stderr.write(s + "\n"), sys.stderr.flush()))
        self.every = every
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int, tokens: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        eta = elapsed / done * (total - done) if done else float("nan")
        self.write(f"[skillbench] {self.label}: {done}/{total} generated, {tokens / elapsed:.1f} tok/s, "
                   f"elapsed {elapsed:.0f}s, ETA {eta:.0f}s")


def force_key(gen_key: str, target) -> str:
    """The forcing cache key: the generation's key + the forcing version + how the answer is forced."""
    from .forcing import FORCING_VERSION

    return key_of({"generation": gen_key, "forcing": FORCING_VERSION, "target": target.to_dict()})


def generate_cached(backend: Backend, requests: list[GenRequest], store: Store | None,
                    progress: Callable[[int, int, int], None] | None = None, *, force: bool = False,
                    force_store: Store | None = None, bench_version: str | None = None
                    ) -> dict[tuple[str, str], GenResult]:
    """Answer every request, from the cache when possible; returns {(task_uid, condition): result}.

    ``force``: requests with a ``force`` target also get their answer forced (``forcing.py``), stored in
    ``GenResult.extra["forced"]``: inline for fresh generations, in a separate batched pass for cached ones,
    and from ``force_store`` (keyed by the generation key + forcing version) when computed before."""
    out: dict[tuple[str, str], GenResult] = {}
    if not backend.needs_generation:
        for r in requests:
            out[(r.task_uid, r.condition)] = backend.lookup(r.task_uid, r.condition)  # type: ignore[attr-defined]
        return out
    fp = backend.fingerprint()
    missing: list[GenRequest] = []
    keys: dict[int, str] = {}
    for r in requests:
        k = request_key(fp, r, bench_version)
        keys[id(r)] = k
        hit = store.get(k) if store else None
        if hit is not None and hit.get("text") is not None:
            out[(r.task_uid, r.condition)] = GenResult(text=hit["text"], gen_tokens=hit.get("gen_tokens"), cached=True)
        else:
            missing.append(r)

    def save(req: GenRequest, res: GenResult) -> None:
        out[(req.task_uid, req.condition)] = res
        if store is not None and res.text is not None:
            store.put(keys[id(req)], {"text": res.text, "gen_tokens": res.gen_tokens, "task_uid": req.task_uid,
                                      "condition": req.condition})

    forced: dict[tuple[str, str], dict] = {}
    force = force and backend.supports_forcing

    def save_forced(req: GenRequest, result: dict) -> None:
        forced[(req.task_uid, req.condition)] = result
        if force_store is not None:
            force_store.put(force_key(keys[id(req)], req.force), {"forced": result, "task_uid": req.task_uid,
                                                                  "condition": req.condition})

    if missing:
        kw = {"on_forced": save_forced} if force else {}
        backend.generate(missing, progress=progress, on_result=save, **kw)
    if force:
        todo = []
        for r in requests:
            k = (r.task_uid, r.condition)
            if r.force is None or k in forced or k not in out or out[k].text is None:
                continue
            hit = force_store.get(force_key(keys[id(r)], r.force)) if force_store is not None else None
            if hit is not None and isinstance(hit.get("forced"), dict):
                forced[k] = hit["forced"]
            else:
                todo.append((r, out[k].text))
        if todo:
            backend.force(todo, save_forced)  # type: ignore[attr-defined]
        for k, result in forced.items():
            if k in out:
                out[k].extra["forced"] = result
    return out
