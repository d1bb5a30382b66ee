"""The backend interface shared by every student backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .registry import StudentSpec


@dataclass
class GenRequest:
    """One prompt to answer: the rendered messages and where the answer goes."""

    task_uid: str
    condition: str
    messages: list[dict[str, str]]
    force: object | None = None  # a forcing.ForceTarget when the answer may be forced (hf students only)


@dataclass
class GenResult:
    text: str | None
    gen_tokens: int | None = None
    error: str | None = None
    cached: bool = False
    extra: dict = field(default_factory=dict)


Progress = Callable[[int, int, int], None]  # (done, total, generated tokens so far)


class Backend:
    """A student backend: produces responses for requests; describes its inference path."""

    spec: StudentSpec
    needs_generation = True
    supports_forcing = False  # answer forcing needs the model's own logits (hf students)

    def fingerprint(self) -> dict:
        """Everything that changes the output; it keys the generation cache."""
        raise NotImplementedError

    def path_info(self) -> dict:
        """Provenance for the manifest (a superset of the fingerprint)."""
        return self.fingerprint()

    def generate(self, requests: list[GenRequest], progress: Progress | None = None,
                 on_result: Callable[[GenRequest, GenResult], None] | None = None) -> list[GenResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds open (a served student's HTTP connections); called once at the end
        of the session. Backends without such resources keep this no-op."""
