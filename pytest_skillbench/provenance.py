"""Provenance of each student's inference path, and the matched-path guard.

Any comparison across students or runs (SFT contribution, cross-model, gates) is only meaningful when the
two sides were generated and judged the same way. ``inference_path`` reduces a manifest entry to the
fields that change outcomes -- backend, dtype, quantisation, chat template, generation config, thinking
policy, judge -- and ``path_differences`` names every field that differs. ``check_paths`` refuses with a
``SkillbenchError`` naming each difference unless mismatches are allowed, in which case the caller flags
every affected report line with the returned differences.

A replay student carries its original path in the optional ``path`` field of its JSONL rows; the replay
backend copies it to ``original_*`` keys, which are used here in place of ``backend: replay``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SkillbenchError

PATH_FIELDS = ("backend", "dtype", "quantization", "chat_template", "generation", "thinking", "judge")
# Keys of a student's provenance record in the manifest (None where unknown).
PROVENANCE_FIELDS = ("backend", "base", "revision", "weights", "adapter", "dtype", "device", "quantization",
                     "chat_template", "trained_chat_template", "thinking", "generation")


def student_provenance(spec: dict, path_info: dict) -> dict:
    """The manifest's per-student provenance record: every field present, None where unknown."""
    info = dict(path_info or {})
    if info.get("backend") == "replay":
        # the original path of a replayed student, when its file recorded one
        orig = {k[len("original_"):]: v for k, v in info.items() if k.startswith("original_")}
        rec = {k: orig.get(k) for k in PROVENANCE_FIELDS}
        rec["replayed_from"] = info.get("file")
        rec["backend"] = orig.get("backend") or "replay"
    else:
        rec = {k: info.get(k) for k in PROVENANCE_FIELDS}
        rec["backend"] = info.get("backend") or spec.get("backend")
    rec["base"] = rec["base"] or spec.get("base") or spec.get("model")
    rec["revision"] = rec["revision"] or spec.get("revision")
    if rec["quantization"] is None:
        rec["quantization"] = spec.get("quantization")
    gen = rec.get("generation")
    thinking = spec.get("thinking") or (gen.get("thinking") if isinstance(gen, dict) else None)
    rec["thinking"] = rec["thinking"] or thinking or "keep"
    rec["base_student"] = spec.get("base_student")
    return rec


def _judge_key(judge: dict | None) -> dict | None:
    if not judge:
        return None
    keep = ("mode", "backend", "model", "prompt_version")
    return {k: judge.get(k) for k in keep if judge.get(k) is not None}


def inference_path(run: dict, student: str) -> dict:
    """The fields of ``student``'s inference path that must match for a comparison (from a manifest)."""
    entry = (run.get("students") or {}).get(student) or {}
    prov = entry.get("provenance") or student_provenance(entry.get("spec") or {}, entry.get("path") or {})
    gen = prov.get("generation")
    if isinstance(gen, dict):
        gen = {k: v for k, v in gen.items() if k != "thinking"}  # compared as its own field
    return {"backend": prov.get("backend"), "dtype": prov.get("dtype"), "quantization": prov.get("quantization"),
            "chat_template": prov.get("chat_template"), "generation": gen or None,
            "thinking": prov.get("thinking") or "keep",
            "judge": _judge_key(entry.get("judge") or run.get("judge"))}


def _fmt(v) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def path_differences(a: dict, b: dict) -> list[str]:
    """Every differing field of two inference paths, as ``field: A vs B`` (dicts field by field)."""
    out = []
    for key in PATH_FIELDS:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if va.get(sub) != vb.get(sub):
                    out.append(f"{key}.{sub}: {_fmt(va.get(sub))} vs {_fmt(vb.get(sub))}")
        elif va != vb:
            out.append(f"{key}: {_fmt(va)} vs {_fmt(vb)}")
    return out


def check_paths(what: str, a_name: str, a_path: dict, b_name: str, b_path: dict, *, allow: bool) -> list[str]:
    """Refuse a comparison of two students whose inference paths differ (unless ``allow``).

    Returns the differences (empty when the paths match); with ``allow`` the caller flags its report lines.
    """
    diffs = path_differences(a_path, b_path)
    if diffs and not allow:
        raise SkillbenchError(f"{what} {a_name} vs {b_name}: inference paths differ ({'; '.join(diffs)}); "
                              "compare students generated and judged the same way, or pass --allow-path-mismatch "
                              "to report it anyway with every affected line flagged")
    return diffs


def template_warnings(run: dict) -> list[dict]:
    """Students whose adapter was trained with a different chat template than the one used to evaluate it."""
    out = []
    for name, entry in (run.get("students") or {}).items():
        prov = entry.get("provenance") or student_provenance(entry.get("spec") or {}, entry.get("path") or {})
        trained, used = prov.get("trained_chat_template"), prov.get("chat_template")
        if trained and used and trained != used:
            out.append({"student": name, "trained_chat_template": trained, "chat_template": used,
                        "message": f"{name}: adapter was trained with chat template {trained} but evaluated "
                                   f"with {used}"})
    return out


def stored_runs(dirs: list[Path]) -> list[Path]:
    """Run directories (holding manifest.json and episodes.jsonl) under ``dirs``, newest first."""
    found = []
    for d in dirs:
        if not d.is_dir():
            continue
        for cand in d.iterdir():
            if (cand / "manifest.json").is_file() and (cand / "episodes.jsonl").is_file():
                found.append(cand)
    return sorted(set(found), key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)


def find_stored_student(dirs: list[Path], student: str, bench_hash: str | None = None,
                        exclude: Path | None = None) -> tuple[Path, dict] | None:
    """The newest stored run holding ``student`` (on the same bench when ``bench_hash`` is given)."""
    for run_dir in stored_runs(dirs):
        if exclude is not None and run_dir.resolve() == Path(exclude).resolve():
            continue
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if student not in (manifest.get("students") or {}):
            continue
        if bench_hash and manifest.get("bench_hash") and manifest["bench_hash"] != bench_hash:
            continue
        return run_dir, manifest
    return None


def judge_prompt_version(mode: str | None) -> str | None:
    """The judge prompt's version (None for the deterministic judge, which has no prompt)."""
    if not mode or mode == "deterministic":
        return None
    import importlib

    for mod in ("pytest_skillbench.judges.llm", "pytest_skillbench.judges.llm_judge"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        for attr in ("JUDGE_PROMPT_VERSION", "PROMPT_VERSION"):
            if getattr(m, attr, None):
                return str(getattr(m, attr))
    return None


def complete_manifest(session, manifest: dict) -> dict:
    """Add what the issue's manifest needs and the session's base manifest lacks (never overwriting a key).

    Per student a ``provenance`` record (backend, base id, revision, weight and adapter hashes, dtype, device,
    quantisation, chat template hash, thinking policy, generation config); the judge prompt version; the
    thinking override, SFT pairs and path-mismatch policy of the run; analysis package versions.
    """
    import importlib.metadata as md

    s = session.settings
    for entry in (manifest.get("students") or {}).values():
        entry.setdefault("provenance", student_provenance(entry.get("spec") or {}, entry.get("path") or {}))
    judge = manifest.setdefault("judge", {})
    if isinstance(judge, dict):
        judge.setdefault("prompt_version", judge_prompt_version(judge.get("mode")))
    manifest.setdefault("thinking", s.thinking)
    manifest.setdefault("sft_pairs", list(s.sft_pair))
    manifest.setdefault("allow_path_mismatch", bool(s.allow_path_mismatch))
    manifest.setdefault("run_dir", str(session.run_dir))
    pkgs = manifest.setdefault("packages", {})
    for pkg in ("pandas", "matplotlib", "pytest-skillbench"):
        if pkg not in pkgs:
            try:
                pkgs[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                pkgs[pkg] = None
    return manifest
