"""Reading JSON Lines files: one place for the line rule and the file/line errors every loader gives.

Lines are split on ``"\\n"`` only. ``str.splitlines()`` also splits on U+2028, U+2029 and U+0085, which
``json.dumps(..., ensure_ascii=False)`` writes raw inside strings, so a model response
holding one would break its row in two.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SkillbenchError


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of a JSONL file (blank ones included, so that ``enumerate(..., 1)`` gives line numbers), or
    one error naming the file: ``cannot read <what>: ...``."""
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise SkillbenchError(f"cannot read {what}: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:
        raise SkillbenchError(f"cannot read {what}: not UTF-8 text (byte {exc.start})", path=path) from None


def parse_line(raw: str, path: Path, line: int, *, column: bool = False):
    """One line's JSON value, or ``malformed JSON: ...`` naming the file and line (and column if asked)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f" (column {exc.colno})" if column else ""
        raise SkillbenchError(f"malformed JSON: {exc.msg}{where}", path=path, line=line) from None
