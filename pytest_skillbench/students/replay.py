"""``replay:PATH``: stored responses from an episodes JSONL, so judging and statistics need no model."""

from __future__ import annotations

from pathlib import Path

from ..errors import SkillbenchError
from ..jsonl import parse_line, read_lines
from .base import Backend, GenRequest, GenResult
from .registry import StudentSpec


class ReplayBackend(Backend):
    needs_generation = False

    def __init__(self, spec: StudentSpec):
        self.spec = spec
        self.path = Path(spec.path or "")
        self.responses: dict[tuple[str, str], dict] = {}
        for n, line in enumerate(read_lines(self.path, "replay file"), 1):
            if not line.strip():
                continue
            row = parse_line(line, self.path, n)
            if not isinstance(row, dict):
                raise SkillbenchError("each line must be a JSON object", path=self.path, line=n)
            for key in ("task_uid", "condition", "response"):
                if key not in row:
                    raise SkillbenchError("missing field", path=self.path, line=n, field=key)
            if row.get("student") not in (None, spec.name) and not spec.name.startswith(str(row.get("student"))):
                continue
            if row["response"] is not None and not isinstance(row["response"], str):
                raise SkillbenchError("response must be a string or null", path=self.path, line=n, field="response")
            self.responses[(row["task_uid"], row["condition"])] = row
        self._path_meta = self._read_path_meta()

    def _read_path_meta(self) -> dict:
        """A replay file may carry the original inference path in a ``path`` field (copied to provenance)."""
        for row in self.responses.values():
            if isinstance(row.get("path"), dict):
                return row["path"]
        return {}

    def fingerprint(self) -> dict:
        return {"backend": "replay", "file": str(self.path)}

    def path_info(self) -> dict:
        info = {"backend": "replay", "file": str(self.path)}
        info.update({f"original_{k}": v for k, v in self._path_meta.items()})
        return info

    def lookup(self, task_uid: str, condition: str) -> GenResult:
        row = self.responses.get((task_uid, condition))
        if row is None:
            return GenResult(text=None, error=f"no stored response for {task_uid}/{condition} in {self.path}")
        if row.get("response") is None:
            return GenResult(text=None, error=str(row.get("error") or "stored response is null"))
        return GenResult(text=row["response"], gen_tokens=row.get("gen_tokens"), cached=True)

    def generate(self, requests: list[GenRequest], progress=None, on_result=None) -> list[GenResult]:
        out = []
        for r in requests:
            res = self.lookup(r.task_uid, r.condition)
            if on_result:
                on_result(r, res)
            out.append(res)
        return out


def build(spec: StudentSpec, session) -> ReplayBackend:
    """The ``replay`` entry of ``backends.STUDENT_BACKENDS`` (a replay file needs nothing from the session)."""
    return ReplayBackend(spec)
