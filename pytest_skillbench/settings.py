"""Settings: command-line options merged over ``[tool.skillbench]`` in pyproject.toml.

Precedence: command line > pyproject.toml > built-in default. Every option is settable in both places under
the same name with dashes or underscores (``max-new-tokens`` / ``max_new_tokens``).
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import SkillbenchError

JUDGES = ("deterministic", "deterministic-mixed", "llm-only", "both")
JUDGE_BACKENDS = ("anthropic", "openai", "hf")


@dataclass
class Settings:
    student: list[str] = field(default_factory=list)
    condition: list[str] = field(default_factory=lambda: ["baseline", "curated"])
    judge: str = "deterministic"
    bench: str = "bundled"
    catalog: str | None = None
    split: str = "holdout"
    max_new_tokens: int = 512
    batch_size: int = 16
    device: str | None = None
    dtype: str | None = None
    repetition_penalty: float = 1.05
    cache: str | None = None
    json: str | None = None
    episodes: str | None = None
    run_dir: str | None = None
    html: str | None = None  # --skillbench-html: the run viewer page, "none", or unset (RUN_DIR/report.html)
    seed: int = 20251122
    resamples: int = 10_000
    thinking: str | None = None
    judge_backend: str = "anthropic"
    judge_model: str | None = None
    judge_concurrency: int = 8
    judge_base_url: str | None = None
    judge_api_key_env: str | None = None
    judge_timeout: float = 60.0  # seconds per judge request
    judge_max_attempts: int = 6  # tries per judge request (429/5xx/529/timeouts are retried)
    judge_backoff: float = 1.0  # first backoff in seconds (doubles per retry, with jitter)
    judge_max_tokens: int | None = None  # judge output budget (default 1024 for API judges, 384 for hf)
    rejudge: bool = False
    sft_pair: list[str] = field(default_factory=list)
    allow_path_mismatch: bool = False
    gate: list[str] = field(default_factory=list)
    gate_against: str | None = None
    gate_margin: float = 0.0
    probe: str | None = None  # generality probe: "generality" or a probe JSONL (replaces the bench)
    pairwise: bool = False  # blind pairwise judging of each student against its base (LLM judge)
    rubric: bool = False  # pointwise 1-5 rubric judging (LLM judge)
    answer_forcing: str = "auto"  # auto | on | off: force answers of responses without a usable ANSWER line
    scoring: str = "primary"  # primary (strict, else forced) | strict (the ANSWER-line verdict only)
    students: dict = field(default_factory=dict)  # the registry


# option dest -> settings field
OPTION_DESTS = {
    "skillbench_student": "student", "skillbench_condition": "condition", "skillbench_judge": "judge",
    "skillbench_bench": "bench", "skillbench_catalog": "catalog", "skillbench_split": "split",
    "skillbench_max_new_tokens": "max_new_tokens", "skillbench_batch_size": "batch_size",
    "skillbench_device": "device", "skillbench_dtype": "dtype",
    "skillbench_repetition_penalty": "repetition_penalty", "skillbench_cache": "cache",
    "skillbench_json": "json", "skillbench_episodes": "episodes", "skillbench_run_dir": "run_dir",
    "skillbench_html": "html",
    "skillbench_seed": "seed", "skillbench_thinking": "thinking", "skillbench_judge_backend": "judge_backend",
    "skillbench_judge_model": "judge_model", "skillbench_judge_concurrency": "judge_concurrency",
    "skillbench_judge_base_url": "judge_base_url", "skillbench_rejudge": "rejudge",
    "skillbench_judge_api_key_env": "judge_api_key_env", "skillbench_judge_timeout": "judge_timeout",
    "skillbench_judge_max_attempts": "judge_max_attempts", "skillbench_judge_backoff": "judge_backoff",
    "skillbench_judge_max_tokens": "judge_max_tokens",
    "skillbench_sft_pair": "sft_pair", "skillbench_allow_path_mismatch": "allow_path_mismatch",
    "skillbench_gate": "gate", "skillbench_gate_against": "gate_against", "skillbench_gate_margin": "gate_margin",
    "skillbench_probe": "probe", "skillbench_pairwise": "pairwise", "skillbench_rubric": "rubric",
    "skillbench_answer_forcing": "answer_forcing", "skillbench_scoring": "scoring",
}
# pyproject aliases (so the config file can use the option's own name)
_ALIASES = {"skillbench_cache": "cache", "skillbench_json": "json", "skillbench_episodes": "episodes",
            "skillbench_rejudge": "rejudge", "skillbench_run_dir": "run_dir", "skillbench_html": "html"}


def has_skillbench_table(path: Path) -> bool:
    """True when ``path`` is a readable pyproject.toml with a ``[tool.skillbench]`` table (cheap text check
    first; a malformed file counts as True so that read_pyproject reports it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    if "skillbench" not in text:
        return False
    try:
        return "skillbench" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        return True


def read_pyproject(root: Path) -> dict:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SkillbenchError(f"malformed TOML: {exc}", path=path) from None
    return data.get("tool", {}).get("skillbench", {}) or {}


@functools.cache
def _field_types() -> dict[str, tuple[type, bool]]:
    """Settings field -> (base type, accepts None), from the resolved annotations (``int | None`` ->
    ``(int, True)``, ``list[str]`` -> ``(list, False)``); the module's postponed annotations are strings."""
    out = {}
    for name, hint in typing.get_type_hints(Settings).items():
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        optional = False
        if origin in (typing.Union, types.UnionType):
            optional = type(None) in args
            rest = [a for a in args if a is not type(None)]
            hint = rest[0] if len(rest) == 1 else str
            origin = typing.get_origin(hint)
        out[name] = (origin or hint, optional)
    return out


def _coerce(name: str, value, where: str):
    """Convert a pyproject / command-line value to the settings field's type, or raise one clear error."""
    typ, optional = _field_types()[name]
    if value is None:
        if optional:
            return None
        raise SkillbenchError(f"{where}: {name} needs a value ({typ.__name__})")
    try:
        if typ is list:
            return [str(v) for v in (value if isinstance(value, list) else [value])]
        if typ is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if typ is dict:
            if not isinstance(value, dict):
                raise TypeError
            return value
        if isinstance(value, (list, dict)):
            raise TypeError
    except (TypeError, ValueError):
        raise SkillbenchError(f"{where}: {name} = {value!r} has the wrong type ({typ.__name__})") from None
    return str(value)


def build_settings(cli: dict, root: Path) -> Settings:
    """``cli`` maps settings field -> value (None / [] when not given on the command line)."""
    s = Settings()
    file_cfg = read_pyproject(root)
    valid = {f.name for f in fields(Settings)}
    for raw_key, value in file_cfg.items():
        key = raw_key.replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in valid:
            raise SkillbenchError(f"{root / 'pyproject.toml'} [tool.skillbench]: unknown key {raw_key!r}")
        setattr(s, key, _coerce(key, value, f"{root / 'pyproject.toml'} [tool.skillbench]"))
    for key, value in cli.items():
        if value is None or value == [] or value is False:
            continue
        setattr(s, key, _coerce(key, value, f"--{key.replace('_', '-')}"))
    if s.judge not in JUDGES:
        raise SkillbenchError(f"--judge {s.judge!r} is not one of {', '.join(JUDGES)}")
    if s.judge_backend not in JUDGE_BACKENDS:
        raise SkillbenchError(f"--judge-backend {s.judge_backend!r} is not one of {', '.join(JUDGE_BACKENDS)}")
    if s.answer_forcing not in ("auto", "on", "off"):
        raise SkillbenchError(f"--answer-forcing {s.answer_forcing!r} is not one of auto, on, off")
    if s.scoring not in ("primary", "strict"):
        raise SkillbenchError(f"--scoring {s.scoring!r} is not one of primary, strict")
    if s.judge_concurrency < 1:
        raise SkillbenchError(f"--judge-concurrency must be at least 1, got {s.judge_concurrency}")
    for c in s.condition:
        if c not in ("baseline", "curated"):
            raise SkillbenchError(f"--condition {c!r} is not baseline or curated")
    s.condition = [c for c in ("baseline", "curated") if c in s.condition]
    for key in ("cache", "json", "episodes", "run_dir"):
        value = getattr(s, key)
        if value and not Path(value).expanduser().is_absolute():
            setattr(s, key, str((root / Path(value).expanduser()).resolve()))
    if s.html and s.html.strip().lower() != "none" and not Path(s.html).expanduser().is_absolute():
        s.html = str((root / Path(s.html).expanduser()).resolve())
    if s.bench != "bundled" and not Path(s.bench).is_absolute():
        s.bench = str((root / s.bench).resolve()) if (root / s.bench).exists() else s.bench
    if s.catalog and not Path(s.catalog).is_absolute() and (root / s.catalog).exists():
        s.catalog = str((root / s.catalog).resolve())
    return s
