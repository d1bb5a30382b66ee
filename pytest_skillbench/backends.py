"""The backend registries: which student backends (``backend = ...``) and judge backends (``--judge-backend``)
exist, and the factory that builds each.

Why a registry: the session and the judge runner used to branch on the name in if/elif ladders, and the
list of valid names was repeated in the registry validation and the option choices. Here each backend is
one ``register`` line naming its module's factory as ``"module:attribute"``; the module is imported only
when a backend of that name is built, so building the registries (and validating a project's students)
never imports torch or transformers. Adding a backend = one module with a factory + one line below.

Factory signatures: a student backend ``build(spec, session) -> Backend`` (the session gives settings, the
model pool and the cache directory); a judge backend ``build(settings, *, cache_dir, pool, root)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import SkillbenchError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: str  # "package.module:attribute", resolved on first use
    traits: frozenset[str] = field(default_factory=frozenset)


class Registry:
    """Name -> lazily imported factory; unknown names are one ``SkillbenchError`` listing the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, factory: str, *traits: str) -> None:
        """Register ``name`` (later registrations replace earlier ones: a plugin may override a backend)."""
        if ":" not in factory:
            raise ValueError(f"{self.kind} backend {name!r}: factory {factory!r} is not 'module:attribute'")
        self._entries[name] = Entry(name, factory, frozenset(traits))

    def names(self, trait: str | None = None) -> tuple[str, ...]:
        """Registered names in registration order (only those carrying ``trait`` when given)."""
        return tuple(e.name for e in self._entries.values() if trait is None or trait in e.traits)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def check(self, name: str, where: str) -> None:
        """Raise ``"{where} 'name' is not one of a, b, c"`` for an unregistered name."""
        if name not in self._entries:
            raise SkillbenchError(f"{where} {name!r} is not one of {', '.join(self.names())}")

    def factory(self, name: str, where: str) -> Callable:
        self.check(name, where)
        module, _, attr = self._entries[name].factory.partition(":")
        obj = importlib.import_module(module, package=__package__)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def create(self, name: str, *args, where: str, **kwargs):
        """Build backend ``name`` with its factory (importing its module now)."""
        return self.factory(name, where)(*args, **kwargs)


STUDENT_BACKENDS = Registry("student")
STUDENT_BACKENDS.register("hf", ".students.hf:build")
STUDENT_BACKENDS.register("replay", ".students.replay:build")
STUDENT_BACKENDS.register("openai", ".students.openai:build", "served")  # served: `adapter` is a served name
STUDENT_BACKENDS.register("anthropic", ".students.anthropic:build", "served")

JUDGE_BACKENDS = Registry("judge")
JUDGE_BACKENDS.register("anthropic", ".judges.anthropic:build")
JUDGE_BACKENDS.register("openai", ".judges.openai:build")
JUDGE_BACKENDS.register("hf", ".judges.hf:build")
