"""Settings: command-line options merged over ``[tool.skillbench]`` in pyproject.toml.

Precedence: command line > pyproject.toml > built-in default. Every option is settable in both places under
the same name with dashes or underscores (``max-new-tokens`` / ``max_new_tokens``). Options are declared once,
as fields of :class:`Settings` made with :func:`opt` (help, metavar, choices, the default ``--help`` shows);
``pytest_addoption``, the ``[tool.skillbench]`` keys and the choice checks all read them.
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

from .backends import JUDGE_BACKENDS as _JUDGE_REGISTRY
from .errors import SkillbenchError

JUDGES = ("deterministic", "deterministic-mixed", "llm-only", "both")
JUDGE_BACKENDS = _JUDGE_REGISTRY.names()  # --judge-backend choices: the registered judge backends
CONDITIONS = ("baseline", "curated")


def opt(default=None, *, help: str, flag: str | None = None, metavar: str | None = None,
        choices: tuple[str, ...] | None = None, shown: str | None = None, factory=None):
    """A settings field that is also a command-line option (``--field-name`` unless ``flag`` says otherwise,
    dest ``skillbench_<field>``) and a ``[tool.skillbench]`` key. ``shown`` is the default as ``--help``
    prints it when the field's own default (often None = decided later) would not say what happens."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    """Every run setting. A field made with :func:`opt` is an option; adding one is adding a field here."""

    student: list[str] = opt(factory=list, metavar="NAME", shown="none",  # noqa: RUF009 (a field)
                             help="student to evaluate (repeatable): a registered name, smollm2-135m, replay:PATH, "
                                  "or a model/adapter directory; NAME@checkpoint-N selects a checkpoint")
    condition: list[str] = opt(factory=lambda: list(CONDITIONS), choices=CONDITIONS, shown="both",  # noqa: RUF009 (a field)
                               help="condition to run (repeatable)")
    judge: str = opt("deterministic", choices=JUDGES,
                     help="deterministic (ANSWER line), deterministic-mixed, llm-only or both")
    bench: str = opt("bundled", metavar="bundled|PATH",
                     help="bundled bench, a directory/JSONL in the project's format, or a reference tasks JSON")
    catalog: str | None = opt(metavar="PATH", shown="the bench's own",
                              help="skill catalog: a directory of YAML skills or a reference skills.json")
    split: str = opt("holdout", choices=("holdout", "train"), help="which split of the bench to run")
    max_new_tokens: int = opt(512, metavar="N",
                              help="generation budget per response (a registry entry's max_new_tokens wins)")
    batch_size: int = opt(16, metavar="N", help="rows decoded at once by the generation engine (hf students)")
    device: str | None = opt(metavar="DEVICE", shown="auto", help="cpu, cuda, cuda:1, mps or auto")
    dtype: str | None = opt(metavar="DTYPE", shown="auto", help="auto, float32, bfloat16 or float16")
    repetition_penalty: float = opt(1.05, metavar="X",
                                    help="repetition penalty of greedy decoding (recorded in the cache key)")
    cache: str | None = opt(flag="--skillbench-cache", metavar="DIR", shown="~/.cache/pytest-skillbench",
                            help="cache of converted models, generations and judgments")
    json: str | None = opt(flag="--skillbench-json", metavar="PATH", shown="none", help="JSON report")
    episodes: str | None = opt(flag="--skillbench-episodes", metavar="PATH", shown="none",
                               help="JSONL of every episode")
    run_dir: str | None = opt(flag="--skillbench-run-dir", metavar="DIR", shown=".skillbench/runs/<time>-<pid>",
                              help="where this run's episodes, manifest and report are written")
    html: str | None = opt(flag="--skillbench-html", metavar="PATH|none", shown="RUN_DIR/report.html",
                           help="write the self-contained HTML run viewer here at session end; 'none' writes "
                                "no page")
    seed: int = opt(20251122, flag="--skillbench-seed", metavar="N", help="seed of the bootstrap resampling")
    resamples: int = 10_000  # bootstrap resamples ([tool.skillbench] only)
    thinking: str | None = opt(choices=("keep", "strip", "disable"), shown="keep",
                               help="what happens to <think>...</think> before judging: keep, strip, or disable "
                                    "(the chat template is asked not to think; leftovers stripped); recorded in "
                                    "the manifest")
    judge_backend: str = opt("anthropic", choices=JUDGE_BACKENDS,
                             help="LLM judge for --judge deterministic-mixed / llm-only / both: anthropic "
                                  "(ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL), openai (chat-completions) or hf "
                                  "(local model)")
    judge_model: str | None = opt(metavar="NAME", shown="anthropic: claude-sonnet-4-5, openai: gpt-4.1, "
                                                        "hf: smollm2-135m",
                                  help="judge model (hf: also a path)")
    judge_concurrency: int = opt(8, metavar="N", help="judge requests in flight at once")
    judge_base_url: str | None = opt(metavar="URL", shown="the SDK's / https://api.openai.com/v1",
                                     help="judge endpoint: an OpenAI-compatible /v1 base (openai), or overrides "
                                          "ANTHROPIC_BASE_URL")
    judge_api_key_env: str | None = opt(metavar="VAR", shown="OPENAI_API_KEY",
                                        help="environment variable holding the openai judge's key")
    judge_timeout: float = opt(60.0, metavar="SECONDS", help="timeout of one judge request")
    judge_max_attempts: int = opt(6, metavar="N",
                                  help="tries per judge request; 429/5xx/529/timeouts/dropped connections are "
                                       "retried with exponential backoff and jitter, honouring retry-after")
    judge_backoff: float = opt(1.0, metavar="SECONDS", help="first retry wait, doubled per retry")
    judge_max_tokens: int | None = opt(metavar="N", shown="1024 for API judges, 384 for hf",
                                       help="judge output token budget")
    rejudge: bool = opt(False, flag="--skillbench-rejudge",
                        help="reuse the newest matching stored run: keep its passed/failed episodes, re-judge its "
                             "error/unscored ones from the stored responses (no regeneration)")
    sft_pair: list[str] = opt(factory=list, metavar="STUDENT=BASE", shown="none",  # noqa: RUF009 (a field)
                              help="report the SFT contribution of STUDENT over BASE_STUDENT (repeatable; BASE may "
                                   "come from a stored run); also set by base_student in the registry")
    allow_path_mismatch: bool = opt(False, help="compare students whose inference paths differ (backend, dtype, "
                                                "template, generation, judge), flagging every affected report line "
                                                "instead of refusing")
    gate: list[str] = opt(factory=list, metavar="EXPR", shown="none",  # noqa: RUF009 (a field)
                          help="CI gate (repeatable), e.g. 'curated.pass_rate>=0.85', 'delta>=0', "
                               "'delta.ci95.low>0', 'skill:modus-ponens.curated.pass_rate>=0.6'; exit 1 when one "
                               "fails, 0 when all hold")
    gate_against: str | None = opt(metavar="REF", shown="none",
                                   help="non-inferiority gate against REF: another student of the run, or a "
                                        "baseline file from `skillbench baseline save` (PATH or PATH::STUDENT)")
    gate_margin: float = opt(0.0, metavar="M",
                             help="non-inferiority margin: fail when the lower bound of the paired 95%% CI of "
                                  "(new - REF) pass rate is below -M, per condition")
    probe: str | None = opt(metavar="generality|PATH", shown="none",
                            help="run the generality probe (bundled battery, or a probe JSONL) instead of the "
                                 "bench; each student's base is added and the report prints a table against it")
    pairwise: bool = opt(False, help="at session end, blind pairwise LLM judging of each student against its base "
                                     "(both orders)")
    rubric: bool = opt(False, help="at session end, pointwise 1-5 rubric LLM judging of every answered episode")
    answer_forcing: str = opt("auto", choices=("auto", "on", "off"),
                              help="force an answer where a response has no usable ANSWER line: option "
                                   "log-likelihoods or a short greedy continuation after '\\nANSWER:' (auto: on "
                                   "for local hf students)")
    scoring: str = opt("primary", choices=("primary", "strict"),
                       help="primary: the strict verdict when scored, else the forced one; strict: ANSWER-line "
                            "verdicts only")
    students: dict = field(default_factory=dict)  # the registry ([tool.skillbench.students] only)


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option, derived from its settings field."""

    field: str
    flag: str
    dest: str
    help: str
    metavar: str | None
    choices: tuple[str, ...] | None
    kind: str  # "list" (repeatable), "bool" (a switch), "int", "float" or "str"


def _shown_default(f) -> str:
    if f.metadata.get("shown") is not None:
        return f.metadata["shown"]
    value = f.default
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def option_specs() -> tuple[OptionSpec, ...]:
    """The options, in field order: what ``pytest_addoption`` registers and ``build_settings`` reads."""
    out = []
    for f in fields(Settings):
        if "help" not in f.metadata:
            continue
        typ, _ = _field_types()[f.name]
        kind = {list: "list", bool: "bool", int: "int", float: "float"}.get(typ, "str")
        out.append(OptionSpec(field=f.name, flag=f.metadata["flag"] or "--" + f.name.replace("_", "-"),
                              dest=f"skillbench_{f.name}", metavar=f.metadata["metavar"],
                              choices=f.metadata["choices"], kind=kind,
                              help=f"{f.metadata['help']} (default: {_shown_default(f)})"))
    return tuple(out)


def option_dests() -> dict[str, str]:
    """option dest -> settings field."""
    return {o.dest: o.field for o in option_specs()}


def _key_aliases() -> dict[str, str]:
    """[tool.skillbench] keys: the field name, or the option's own name (``skillbench-json``), with - or _."""
    return {o.flag.lstrip("-").replace("-", "_"): o.field for o in option_specs()}


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
    aliases = _key_aliases()
    for raw_key, value in file_cfg.items():
        key = raw_key.replace("-", "_")
        key = aliases.get(key, key)
        if key not in valid:
            raise SkillbenchError(f"{root / 'pyproject.toml'} [tool.skillbench]: unknown key {raw_key!r}")
        setattr(s, key, _coerce(key, value, f"{root / 'pyproject.toml'} [tool.skillbench]"))
    for key, value in cli.items():
        if value is None or value == [] or value is False:
            continue
        setattr(s, key, _coerce(key, value, f"--{key.replace('_', '-')}"))
    for o in option_specs():  # choices hold for values from the file too (argparse checks only the CLI)
        value = getattr(s, o.field)
        for v in (value if isinstance(value, list) else [value]):
            if o.choices and v is not None and v not in o.choices:
                raise SkillbenchError(f"{o.flag} {v!r} is not one of {', '.join(o.choices)}")
    if s.judge_concurrency < 1:
        raise SkillbenchError(f"--judge-concurrency must be at least 1, got {s.judge_concurrency}")
    s.condition = [c for c in CONDITIONS if c in s.condition]
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
