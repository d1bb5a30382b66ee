"""What the LLM-judged studies share: the cached judge call and the hashes that key it.

Pairwise and rubric judging (``pairwise``) and the probe's false-premise judge (``probe``) send their prompts
through one ``JudgeCaller`` and read the replies with the judges' one strict JSON reader, so neither study
reaches into the other's internals.
"""

from __future__ import annotations

import hashlib

from ..cache import Store, key_of
from ..judges.api import JudgeCallError
from ..judges.llm import JudgeParseError, json_object

# One strict JSON reader for every judge prompt (judges/llm.py); ParseError is its exception type.
ParseError = JudgeParseError

__all__ = ["JudgeCaller", "ParseError", "json_object", "prompt_hash", "text_hash"]


def prompt_hash(*parts: str) -> str:
    """A short hash of a prompt's version and texts (part of every cache key of that prompt)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def text_hash(text: str) -> str:
    """The hash of a prompt or response inside a cache key (the text itself is not stored in the key)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class JudgeCaller:
    """Sends judge prompts through a backend, reusing parseable replies from the judgment store.

    Only replies the study's parser accepts are cached, keyed by the backend identity, the study ``kind``,
    its prompt hash and the payload (hashes of prompt and response(s))."""

    def __init__(self, backend, store: Store | None, kind: str, prompt_hash: str, write=None):
        self.backend, self.store, self.kind, self.prompt_hash = backend, store, kind, prompt_hash
        self.write = write or (lambda s: None)
        self.calls = 0
        self.cache_hits = 0

    def key(self, payload: dict) -> str:
        return key_of({"kind": self.kind, "judge": self.backend.identity(), "prompt_hash": self.prompt_hash,
                       **payload})

    def run(self, jobs: list[tuple[str, list[dict], dict]], parse) -> dict[str, object]:
        """jobs: (cache key, messages, meta) -> {key: parsed value | ParseError | JudgeCallError}."""
        out: dict[str, object] = {}
        pending = []
        for key, msgs, _ in jobs:
            if key in out or any(k == key for k, _ in pending):
                continue
            hit = self.store.get(key) if self.store is not None else None
            if hit is not None and "raw" in hit:
                try:
                    out[key] = parse(hit["raw"])
                    self.cache_hits += 1
                    continue
                except ParseError:
                    pass
            pending.append((key, msgs))
        if pending:
            self.write(f"[skillbench] {self.kind}: {len(pending)} judge call(s) with "
                       f"{getattr(self.backend, 'label', 'judge')}")
            raws = self.backend.complete([m for _, m in pending])
            self.calls += len(pending)
            for (key, _), raw in zip(pending, raws):
                if isinstance(raw, JudgeCallError):
                    out[key] = raw
                    continue
                try:
                    out[key] = parse(raw)
                except ParseError as exc:
                    out[key] = exc
                    continue
                if self.store is not None:
                    self.store.put(key, {"raw": raw, "kind": self.kind, "judge": getattr(self.backend, "label", "")})
        return out
