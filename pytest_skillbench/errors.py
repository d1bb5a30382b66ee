"""One exception type for every user-facing input problem.

The plugin and the CLI print ``SkillbenchError`` as a single line (no traceback): the message names the
file, line and field (or the student / item) so the user can fix the input directly.
"""

from __future__ import annotations


class SkillbenchError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None, field: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = ""
        if self.path:
            where = self.path + (f":{line}" if line is not None else "")
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message)
