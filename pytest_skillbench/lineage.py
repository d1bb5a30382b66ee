"""Which student was trained from which: declared SFT pairs and checkpoint families.

The SFT contribution (analysis), drift, the generality probe, pairwise judging and the checkpoint trajectory
all compare a student with its base; they read the pairing here, from the run's manifest, so none of them
imports another to learn it.

* a declared pair: ``--sft-pair STUDENT=BASE``, the run's recorded ``sft_pairs``, or ``base_student`` in a
  student's registry entry;
* a checkpoint family: ``FAMILY@base`` (step 0) and ``FAMILY@checkpoint-N``.
"""

from __future__ import annotations

import re

from .errors import SkillbenchError

_STEP = re.compile(r"^(?P<family>.+)@(?:checkpoint-(?P<step>\d+)|(?P<base>base))$")


def parse_sft_pairs(values: list[str] | None) -> list[tuple[str, str]]:
    """``STUDENT=BASE`` strings as pairs; anything else is one error naming the value."""
    out = []
    for v in values or []:
        if "=" not in v or not all(p.strip() for p in v.split("=", 1)):
            raise SkillbenchError(f"--sft-pair {v!r}: expected STUDENT=BASE_STUDENT")
        s, b = v.split("=", 1)
        out.append((s.strip(), b.strip()))
    return out


def declared_sft_pairs(run: dict, explicit: list[str] | None = None) -> list[tuple[str, str]]:
    """``--sft-pair`` values, the run's recorded pairs and ``base_student`` of registry entries (deduplicated)."""
    pairs = parse_sft_pairs(list(explicit or []) + list(run.get("sft_pairs") or []))
    for name, entry in (run.get("students") or {}).items():
        base = ((entry or {}).get("spec") or {}).get("base_student")
        if base:
            pairs.append((name, base))
    seen, out = set(), []
    for p in pairs:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def step_of(name: str) -> tuple[str, int] | None:
    """``v1@checkpoint-50`` -> ("v1", 50); ``v1@base`` -> ("v1", 0); anything else -> None."""
    m = _STEP.match(name)
    if not m:
        return None
    return m.group("family"), 0 if m.group("base") else int(m.group("step"))


def base_map(names: list[str], run: dict) -> dict[str, str]:
    """student -> its base student, both present in ``names``: a declared SFT pair (``base_student``,
    ``--sft-pair``) first, else ``FAMILY@base`` for ``FAMILY@checkpoint-N`` and for ``FAMILY`` itself."""
    present = set(names)
    out: dict[str, str] = {}
    try:
        pairs = declared_sft_pairs(run or {})
    except SkillbenchError:
        pairs = []
    for s, b in pairs:
        if s in present and b in present and s != b and s not in out:
            out[s] = b
    for n in names:
        if n in out:
            continue
        fam = step_of(n)
        family = fam[0] if fam else n
        base = f"{family}@base"
        if base in present and n != base:
            out[n] = base
    return out
