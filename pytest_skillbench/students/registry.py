"""Student specs: what ``--student NAME`` means.

Resolution order: ``replay:PATH``; a student registered under ``[tool.skillbench.students.NAME]``; the
built-in ``smollm2-135m``; a directory holding ``adapter_config.json`` (a PEFT adapter) or
``config.json`` (a full model). ``NAME@checkpoint-N`` selects a checkpoint of a registered adapter's
training run, ``NAME@base`` its untrained base and ``NAME@all-checkpoints`` (``resolve_students``) the base
plus every checkpoint in step order. Anything else is one clear error at session start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..backends import STUDENT_BACKENDS
from ..errors import SkillbenchError
from .embedded import EMBEDDED_NAME

THINKING = ("keep", "strip", "disable")
STUDENT_FIELDS = ("base", "adapter", "backend", "dtype", "revision", "max_new_tokens", "thinking",
                  "base_student", "device", "path", "base_url", "model", "api_key_env", "concurrency",
                  "repetition_penalty", "quantization", "timeout", "max_retries", "engine")
ENGINES = ("engine", "generate")  # hf: the batched greedy engine, or transformers' generate() one prompt at a time


@dataclass
class StudentSpec:
    name: str
    backend: str = "hf"
    base: str | None = None
    adapter: str | None = None
    dtype: str | None = None
    revision: str | None = None
    max_new_tokens: int | None = None
    thinking: str = "keep"
    base_student: str | None = None
    device: str | None = None
    path: str | None = None  # replay: episodes JSONL
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = None
    repetition_penalty: float | None = None
    quantization: str | None = None
    timeout: float | None = None  # openai/anthropic: seconds per request
    max_retries: int | None = None  # openai/anthropic: retries of a transient failure (then an error episode)
    engine: str | None = None  # hf: "engine" (default) or "generate", the fallback if transformers breaks the engine
    origin: str = field(default="", compare=False)

    @property
    def is_local_model(self) -> bool:
        return self.backend == "hf"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _adapter_base(adapter_dir: Path) -> str | None:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SkillbenchError(f"unreadable adapter_config.json: {exc}", path=adapter_dir) from None
    return cfg.get("base_model_name_or_path")


def _from_registry(name: str, entry: object, root: Path) -> StudentSpec:
    where = f"[tool.skillbench.students.\"{name}\"]"
    if not isinstance(entry, dict):
        raise SkillbenchError(f"{where} must be a table")
    unknown = sorted(set(entry) - set(STUDENT_FIELDS))
    if unknown:
        raise SkillbenchError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(STUDENT_FIELDS)})")
    spec = StudentSpec(name=name, origin=where, **{k: entry[k] for k in entry})
    STUDENT_BACKENDS.check(spec.backend, f"{where}: backend")
    served = spec.backend in STUDENT_BACKENDS.names("served")  # `adapter` is a served adapter *name*, not a path
    if spec.thinking not in THINKING:
        raise SkillbenchError(f"{where}: thinking {spec.thinking!r} is not one of {', '.join(THINKING)}")
    for key in ("adapter", "path"):
        value = getattr(spec, key)
        if key == "adapter" and served:
            continue  # the name under which the server serves the adapter (vLLM --lora-modules NAME=PATH)
        if value and not Path(value).is_absolute():
            setattr(spec, key, str((root / value).resolve()))
    if spec.base and not Path(spec.base).is_absolute() and (root / spec.base).exists():
        spec.base = str((root / spec.base).resolve())
    if spec.backend == "hf" and not spec.base and not spec.adapter:
        raise SkillbenchError(f"{where}: an hf student needs `base` (model id or path) or `adapter`")
    if spec.backend == "replay" and not spec.path:
        raise SkillbenchError(f"{where}: a replay student needs `path` (an episodes JSONL)")
    if served and not (spec.model or spec.adapter):
        raise SkillbenchError(f"{where}: an {spec.backend} student needs `model` (the served model name)")
    if spec.engine is not None and (spec.backend != "hf" or spec.engine not in ENGINES):
        raise SkillbenchError(f"{where}: engine {spec.engine!r} is not one of {', '.join(ENGINES)} "
                              "(an hf student's generation path)")
    if spec.concurrency is not None and int(spec.concurrency) < 1:
        raise SkillbenchError(f"{where}: concurrency must be at least 1")
    return spec


def resolve_student(name: str, registry: dict, root: Path) -> StudentSpec:
    """Turn a ``--student`` value into a spec (no model is loaded here)."""
    if name.startswith("replay:"):
        path = Path(name[len("replay:"):]).expanduser()
        if not path.is_absolute():
            path = (root / path) if (root / path).exists() else path.resolve()
        if not path.is_file():
            raise SkillbenchError("replay file not found", path=path)
        return StudentSpec(name=_replay_name(path), backend="replay", path=str(path), origin=name)
    checkpoint = None
    if "@" in name:
        name, checkpoint = name.split("@", 1)
    if name in registry:
        spec = _from_registry(name, registry[name], root)
    elif name == EMBEDDED_NAME:
        spec = StudentSpec(name=EMBEDDED_NAME, backend="hf", base=EMBEDDED_NAME, origin="built-in")
    else:
        path = Path(name).expanduser()
        if path.is_dir() and (path / "adapter_config.json").is_file():
            spec = StudentSpec(name=path.name, backend="hf", base=_adapter_base(path), adapter=str(path.resolve()),
                               origin=str(path))
        elif path.is_dir() and (path / "config.json").is_file():
            spec = StudentSpec(name=path.name, backend="hf", base=str(path.resolve()), origin=str(path))
        else:
            known = sorted(set(registry) | {EMBEDDED_NAME})
            raise SkillbenchError(f"unknown student {name!r}: not registered under [tool.skillbench.students] "
                                  f"(known: {', '.join(known)}), not built in, and not a model or adapter "
                                  "directory")
    if checkpoint == BASE_SUFFIX:
        spec = base_spec(spec, registry, root)
    elif checkpoint:
        spec = _checkpoint_spec(spec, checkpoint)
    return spec


def _checkpoint_spec(spec: StudentSpec, checkpoint: str) -> StudentSpec:
    """``NAME@checkpoint-50``: the same student with the adapter/model of that training checkpoint."""
    run_dir = Path(spec.adapter or spec.base or "")
    cand = run_dir / checkpoint
    if not cand.is_dir():
        raise SkillbenchError(f"student {spec.name!r} has no checkpoint {checkpoint!r}", path=cand)
    new = StudentSpec(**{k: v for k, v in asdict(spec).items()})
    new.name = f"{spec.name}@{checkpoint}"
    if (cand / "adapter_config.json").is_file():
        new.adapter = str(cand)
    else:
        new.base, new.adapter = str(cand), None
    return new


ALL_CHECKPOINTS = "all-checkpoints"
BASE_SUFFIX = "base"


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` directories of a training run, in step order."""
    out = []
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            if p.is_dir() and p.name.startswith("checkpoint-") and p.name[len("checkpoint-"):].isdigit():
                out.append((int(p.name[len("checkpoint-"):]), p))
    return sorted(out)


def _run_dir_spec(name: str, registry: dict, root: Path) -> StudentSpec:
    """The student a ``NAME@all-checkpoints`` refers to; a bare training directory whose only models are its
    ``checkpoint-N`` subdirectories is accepted too (its base is read from the first checkpoint)."""
    try:
        return resolve_student(name, registry, root)
    except SkillbenchError:
        path = Path(name).expanduser()
        cks = checkpoint_dirs(path)
        if not cks:
            raise
        first = cks[0][1]
        if (first / "adapter_config.json").is_file():
            return StudentSpec(name=path.name, backend="hf", base=_adapter_base(first),
                               adapter=str(path.resolve()), origin=str(path))
        return StudentSpec(name=path.name, backend="hf", base=str(path.resolve()), origin=str(path))


def base_spec(spec: StudentSpec, registry: dict | None = None, root: Path | None = None) -> StudentSpec:
    """Step 0 of a training run: the same student without its training (``NAME@base``).

    An adapter's base is its registered ``base`` (else ``base_model_name_or_path``); a fully fine-tuned
    model's base is ``base`` in the run's ``training_manifest.json``. Every other setting (dtype, budget,
    thinking, device, penalty) is kept so base and checkpoints share one inference path.
    """
    new = StudentSpec(**{k: v for k, v in asdict(spec).items()})
    new.name = f"{spec.name.split('@', 1)[0]}@{BASE_SUFFIX}"
    new.origin = f"base of {spec.name}"
    new.base_student = None
    if spec.adapter:
        new.base = spec.base or _adapter_base(Path(spec.adapter))
        new.adapter = None
        return new
    run_dir = Path(spec.base or "")
    manifest = run_dir / "training_manifest.json"
    base = None
    if manifest.is_file():
        try:
            base = json.loads(manifest.read_text()).get("base")
        except json.JSONDecodeError:
            base = None
    if not base:
        raise SkillbenchError(f"student {spec.name!r}: cannot tell the base model of this full-model run "
                              "(no training_manifest.json with `base`)", path=run_dir)
    if registry and base in registry and root is not None:
        reg = _from_registry(base, registry[base], root)
        new.base, new.revision = reg.base, reg.revision
    else:
        new.base = base
    return new


def resolve_students(name: str, registry: dict, root: Path, *, with_base: bool = False) -> list[StudentSpec]:
    """``--student`` value -> one or more specs.

    ``NAME@all-checkpoints`` expands to the base as step 0 (``NAME@base``) followed by every
    ``NAME@checkpoint-N`` of the training run, in step order. With ``with_base`` (the generality probe)
    a student is followed by its base: the registered ``base_student`` when it has one, else ``NAME@base``
    for an adapter or a fine-tuned model whose run records its base.
    """
    if name.endswith("@" + ALL_CHECKPOINTS) and not name.startswith("replay:"):
        spec = _run_dir_spec(name[: -len(ALL_CHECKPOINTS) - 1], registry, root)
        run_dir = Path(spec.adapter or spec.base or "")
        cks = checkpoint_dirs(run_dir)
        if not cks:
            raise SkillbenchError(f"student {spec.name!r} has no checkpoint-N directories", path=run_dir)
        return [base_spec(spec, registry, root)] + [_checkpoint_spec(spec, p.name) for _, p in cks]
    spec = resolve_student(name, registry, root)
    if not with_base or spec.name.endswith("@" + BASE_SUFFIX):
        return [spec]
    if spec.base_student:
        return [spec, resolve_student(spec.base_student, registry, root)]
    if spec.backend != "hf":
        return [spec]
    try:
        return [spec, base_spec(spec, registry, root)]
    except SkillbenchError:
        return [spec]  # a plain model: it is its own base


def _replay_name(path: Path) -> str:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    student = json.loads(line).get("student")
                except (json.JSONDecodeError, AttributeError):
                    break
                if student:
                    return str(student)
                break
    return path.stem
