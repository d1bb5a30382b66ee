"""One object per pytest session: settings, bench, students, scheduling and aggregation.

The pytest hooks in ``plugin.py`` are thin; they call the methods here. On an xdist worker the session
generates and judges its items and ships each episode on its test report; the controller (or a plain
run) aggregates the episodes and builds the report.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .analysis import session_report_options
from .backends import STUDENT_BACKENDS
from .bench import Bench, Catalog, Task, load_bench
from .bench.catalog import load_catalog
from .cache import Store
from .diagnostics import apply_thinking
from .episodes import Episode, Verdict, read_episodes
from .errors import SkillbenchError
from .generation import ProgressPrinter, generate_cached
from .prompts import PROMPT_VERSION, messages, prompts_hash
from .provenance import complete_manifest
from .report.summary import build_report
from .settings import Settings
from .students.base import Backend, GenRequest, GenResult
from .students.embedded import default_cache_dir
from .students.registry import StudentSpec, resolve_student, resolve_students


@dataclass(frozen=True)
class ItemSpec:
    """What one pytest item evaluates."""

    student: str
    condition: str
    task: Task

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.student, self.condition, self.task.task_uid)


def item_name(spec: ItemSpec) -> str:
    return f"{spec.task.skill}[{spec.student}-{spec.condition}-{spec.task.task_uid}]"


class SkillbenchSession:
    def __init__(self, settings: Settings, root: Path, *, is_worker: bool = False, run_dir: str | None = None,
                 write=None):
        self.settings = settings
        self.root = root
        self.is_worker = is_worker
        self.write = write or (lambda s: (sys.stderr.write(s + "\n"), sys.stderr.flush()))
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.cache_dir = Path(settings.cache) if settings.cache else default_cache_dir()
        self.catalog: Catalog = load_catalog(settings.catalog) if settings.catalog else None  # type: ignore
        self.bench: Bench = load_bench(settings.bench, self.catalog)
        self.catalog = self.bench.catalog
        self.tasks: list[Task] = list(self.bench.split(settings.split))
        self._check_judge_mode()
        self.specs: dict[str, StudentSpec] = {}
        # NAME@all-checkpoints expands to NAME@base + every NAME@checkpoint-N; the probe adds each base
        added_bases: set[str] = set()
        for spec, added in [(sp, bool(settings.probe) and i > 0) for name in settings.student for i, sp in
                            enumerate(resolve_students(name, settings.students, root, with_base=bool(settings.probe)))]:
            if spec.name in self.specs:
                if added or spec.name in added_bases:
                    continue  # a base the probe added that is also given (or added) elsewhere
                raise SkillbenchError(f"student {spec.name!r} given twice")
            if added:
                added_bases.add(spec.name)
            if settings.thinking:  # --thinking overrides every student's registry policy
                spec.thinking = settings.thinking
            self.specs[spec.name] = spec
        self._backends: dict[str, Backend] = {}
        self._pool = None
        self.selected: dict[str, list[ItemSpec]] = defaultdict(list)
        self.responses: dict[tuple[str, str, str], GenResult] = {}
        self.episodes: dict[tuple[str, str, str], Episode] = {}
        self.store = Store(self.cache_dir, "generations")
        self.force_store = Store(self.cache_dir, "forcing")
        self.forcing: dict[str, bool] = self._forcing_plan()  # student -> answers forced (forcing.py)
        self.run_dir = Path(run_dir) if run_dir else self._new_run_dir()
        self.shard = None
        # crash safety (runstate.py): finished episodes of an interrupted run of this command, reused
        self.previous: dict[tuple[str, str, str], Episode] = {}
        self.resume_shards: list[str] = []
        self.resume_key: str | None = None
        # on an xdist worker: () -> keys of the items queued on this worker (set by the plugin), or None
        self.queued = None
        # Validate every student up front: one clear error at session start, never one per item. (An xdist
        # worker builds a backend when it first runs one of its items: the controller has validated them, and a
        # worker that never runs a local model's items should not import torch for it.)
        for spec in self.specs.values():
            if not is_worker:
                self.backend(spec.name)
        if settings.rejudge:  # reuse the stored run's responses; re-judge its error / unscored episodes
            from .rejudge import attach_rejudge

            attach_rejudge(self)
        from .analysis import session_start_checks

        self.stored_bases = session_start_checks(self)  # SFT pairs: parsed, bases found, paths matched
        from .behaviour import session_setup

        session_setup(self)  # --probe battery; the judge of --pairwise / --rubric

    # -- set-up ----------------------------------------------------------------------------------
    def _check_judge_mode(self) -> None:
        """Build the judge runner: an LLM judge's backend and credentials are checked here, at session start."""
        from .judges.runner import build_runner

        self.judges = build_runner(self.settings, root=self.root, pool=lambda: self.pool, cache_dir=self.cache_dir,
                                   write=self.write)
        self.rejudge_from: Path | None = None
        self.rejudge_reuse: dict[tuple[str, str, str], Episode] = {}  # --skillbench-rejudge: scored, kept
        self._judge_prepared: set[tuple[str, str, str]] = set()
        # per student: (how many of its selected specs were seen, the seen ones still awaiting a response)
        self._judge_waiting: dict[str, tuple[int, list[ItemSpec]]] = {}
        self._judge_extra: dict[tuple[str, str, str], dict] = {}

    def _forcing_plan(self) -> dict[str, bool]:
        """Which students get answer forcing: ``auto`` = local hf students; never with an LLM judge, never under
        ``--scoring strict``; ``on`` for a student that cannot be forced is one clear error naming it."""
        s = self.settings
        active = s.scoring != "strict" and s.answer_forcing != "off" and self.judges.mode == "deterministic" \
            and not s.probe
        plan = {}
        for name, spec in self.specs.items():
            # forcing reads on from the engine's own rows: local hf students on the engine (not engine = "generate")
            can = spec.backend == "hf" and getattr(spec, "engine", None) != "generate"
            if active and s.answer_forcing == "on" and not can:
                how = "engine = \"generate\"" if spec.backend == "hf" else f"{spec.backend} backend"
                raise SkillbenchError(f"--answer-forcing on: student {name!r} ({how}) cannot have its answers "
                                      "forced: forcing reads the model's own log-probabilities on the decoding "
                                      "engine, which only local hf students on the engine give (use "
                                      "--answer-forcing auto or off)")
            plan[name] = active and can
        return plan

    def _new_run_dir(self) -> Path:
        if self.settings.run_dir:
            return Path(self.settings.run_dir)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return self.root / ".skillbench" / "runs" / f"{stamp}-{os.getpid()}"

    @property
    def pool(self):
        if self._pool is None:
            from .students.hf import ModelPool

            self._pool = ModelPool(self.cache_dir)
        return self._pool

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            spec = self.specs[name]
            self._backends[name] = STUDENT_BACKENDS.create(spec.backend, spec, self, where=f"student {name!r}: backend")
        return self._backends[name]

    # -- collection --------------------------------------------------------------------------------
    def item_specs(self) -> list[ItemSpec]:
        """All (student, condition, task) in a fixed order: same ids, same order, in every process."""
        from .behaviour import probe_specs

        probe = probe_specs(self)  # --probe: the probe battery replaces the bench
        if probe is not None:
            return probe
        return [ItemSpec(student, cond, task) for student in self.specs for cond in self.settings.condition
                for task in self.tasks]

    def split_file_name(self) -> str:
        from .behaviour import probe_file_name

        if probe_file_name(self):
            return probe_file_name(self)
        src = self.bench.source
        if self.bench.bundled or Path(src).is_dir():
            return f"{self.settings.split}.jsonl"
        return Path(src).name

    def set_selected(self, specs: list[ItemSpec]) -> None:
        self.selected = defaultdict(list)
        self._judge_waiting = {}
        for s in specs:
            self.selected[s.student].append(s)

    def nodeid_of(self, spec: ItemSpec) -> str:
        return f"{self.split_file_name()}::{item_name(spec)}"

    def spec_by_nodeid(self) -> dict[str, ItemSpec]:
        return {self.nodeid_of(s): s for s in self.item_specs()}

    @staticmethod
    def plain_nodeid(nodeid: str) -> str:
        """Without the ``@group`` suffix pytest-xdist's loadgroup adds on workers."""
        nodeid = str(nodeid)
        at = nodeid.rfind("@")
        return nodeid[:at] if at > nodeid.rfind("]") else nodeid

    def set_selected_nodeids(self, nodeids) -> None:
        """The controller of an xdist run learns the selection from the workers' collections."""
        by_id = self.spec_by_nodeid()
        self.set_selected([by_id[n] for n in map(self.plain_nodeid, nodeids) if n in by_id])

    def crash_episode(self, nodeid: str, message: str) -> Episode | None:
        """The episode of an item whose worker died while running it: ``error``, never ``failed``."""
        from .runstate import CRASH_REASON

        nodeid = self.plain_nodeid(nodeid)
        spec = self.spec_by_nodeid().get(nodeid)
        if spec is None:
            return None
        verdict = Verdict(status="error", expected=spec.task.answer, judge="none", rationale=message,
                          reason=CRASH_REASON)
        ep = Episode(student=spec.student, condition=spec.condition, task_uid=spec.task.task_uid,
                     skill=spec.task.skill, query_type=spec.task.query_type, response=None, verdict=verdict,
                     category=self.catalog[spec.task.skill].category if spec.task.skill in self.catalog else "",
                     nodeid=nodeid)
        self.append_shard(ep)
        return ep

    # -- running -----------------------------------------------------------------------------------
    def _pending(self, student: str, focus: ItemSpec | None) -> list[ItemSpec]:
        """What one generation round asks for: every selected item still without a response; for a served
        student (openai / anthropic) a chunk starting at ``focus``, and on an xdist worker only the items
        queued on this worker -- so ``-n N`` spreads a served student's requests over N processes."""
        pending = [s for s in self.selected.get(student, [])
                   if s.key not in self.responses and s.key not in self.previous]
        chunk = getattr(self.backend(student), "chunk_size", None)
        if focus is None or chunk is None:
            return pending
        if self.queued is not None:
            try:
                queued = self.queued()
            except Exception:  # noqa: BLE001 - xdist internals changed: fall back to one item at a time
                queued = set()
            if queued is not None:
                pending = [s for s in pending if s.key in queued]
        rest = [s for s in pending if s.key != focus.key]
        idx = next((i for i, s in enumerate(pending) if s.key == focus.key), len(rest))
        return [focus] + (rest[idx:] + rest[:idx])[: chunk() - 1]

    def _ensure_generated(self, student: str, focus: ItemSpec | None = None) -> None:
        pending = self._pending(student, focus)
        if not pending:
            return
        backend = self.backend(student)
        from .behaviour import request_messages

        from .forcing import target_for

        force = self.forcing.get(student, False)
        reqs = [GenRequest(s.task.task_uid, s.condition, request_messages(self, s),
                           force=target_for(s.task) if force and s.condition != "probe" else None) for s in pending]
        progress = ProgressPrinter(student, self.write, max_new_tokens=getattr(backend, "max_new_tokens", None))
        t0 = time.perf_counter()
        results = generate_cached(backend, reqs, self.store, progress=progress, force=force,
                                  force_store=self.force_store, bench_version=self.bench.version)
        for s in pending:
            self.responses[s.key] = results.get((s.task.task_uid, s.condition)) or GenResult(
                text=None, error="generation produced no result")
        if backend.needs_generation:
            fresh = sum(not r.cached for r in results.values())
            if fresh:
                self.write(f"[skillbench] {student}: generated {fresh} response(s) in {time.perf_counter() - t0:.1f}s")

    def response_for(self, spec: ItemSpec) -> GenResult:
        if spec.key not in self.responses:
            if spec not in self.selected.get(spec.student, []):
                self.selected[spec.student].append(spec)
            try:
                self._ensure_generated(spec.student, spec)
            except SkillbenchError:
                raise
            except Exception as exc:  # a backend outage is an error episode, not a lost one
                return GenResult(text=None, error=f"{type(exc).__name__}: {exc}")
        return self.responses[spec.key]

    def _judged_text(self, spec: ItemSpec) -> str | None:
        policy = self.specs[spec.student].thinking if spec.student in self.specs else "keep"
        return apply_thinking(self.responses[spec.key].text, policy)[0]

    def _ensure_judged(self, student: str) -> None:
        """Judge every selected, generated episode of ``student`` at once (LLM calls run concurrently)."""
        from .judges.runner import JudgeItem

        # Only the specs not yet prepared are looked at (a scan of the whole selection per item was
        # quadratic in a student's items); specs appended to the selection later are picked up by count,
        # and set_selected starts over.
        selected = self.selected.get(student, [])
        seen, waiting = self._judge_waiting.get(student, (0, []))
        waiting = waiting + selected[seen:]
        items, still = [], []
        for s in waiting:
            if s.key in self._judge_prepared or s.key in self.rejudge_reuse:
                continue
            if s.key not in self.responses:
                still.append(s)
                continue
            self._judge_prepared.add(s.key)
            items.append(JudgeItem(s.task, self._judged_text(s), s.condition))
        self._judge_waiting[student] = (len(selected), still)
        self.judges.prepare(items, label=student)

    def judge(self, spec: ItemSpec, response: GenResult) -> Verdict:
        if response.text is None:
            return Verdict(status="error", expected=spec.task.answer, judge="none",
                           rationale=response.error or "no response", reason="generation_error")
        verdict, extra = self.judges.outcome(spec.task, response.text, spec.condition)
        if extra:
            self._judge_extra[spec.key] = extra
        if self.forcing.get(spec.student) and verdict.judge == "deterministic":
            from .forcing import combine

            limit = getattr(self.backend(spec.student), "max_new_tokens", self.settings.max_new_tokens)
            truncated = response.gen_tokens is not None and response.gen_tokens >= limit
            verdict = combine(spec.task, verdict, response.extra.get("forced"), truncated=truncated)
        return verdict

    def run(self, spec: ItemSpec, nodeid: str) -> Episode:
        prev = self.previous.get(spec.key)
        if prev is not None:  # finished by an earlier process of this run (resume): reused, not redone
            return Episode.from_dict({**prev.to_dict(), "nodeid": nodeid})
        stored = self.rejudge_reuse.get(spec.key)
        if stored is not None:  # --skillbench-rejudge: a scored episode of the stored run is kept as it is
            ep = Episode.from_dict({**stored.to_dict(), "nodeid": nodeid})
            self.append_shard(ep)
            return ep
        if spec.condition == "probe":
            from .behaviour import probe_run

            return probe_run(self, spec, nodeid)
        res = self.response_for(spec)
        self._ensure_judged(spec.student)
        # the thinking policy is applied before judging; the stored response stays as generated
        policy = self.specs[spec.student].thinking if spec.student in self.specs else "keep"
        judged, removed = apply_thinking(res.text, policy)
        verdict = self.judge(spec, res if not removed else GenResult(text=judged, gen_tokens=res.gen_tokens,
                                                                     error=res.error, cached=res.cached,
                                                                     extra=res.extra))
        ep = Episode(student=spec.student, condition=spec.condition, task_uid=spec.task.task_uid,
                     skill=spec.task.skill, query_type=spec.task.query_type, response=res.text, verdict=verdict,
                     category=self.catalog[spec.task.skill].category if spec.task.skill in self.catalog else "",
                     nodeid=nodeid, gen_tokens=res.gen_tokens,
                     extra={"thinking": policy, "thinking_removed_chars": removed} if policy != "keep" else {})
        ep.extra.update(self._judge_extra.pop(spec.key, {}))
        from .behaviour import bench_extra

        ep.extra.update(bench_extra(spec, res))  # drift metrics: length, JSON, slop, repetition, refusal
        self.append_shard(ep)
        return ep

    # -- episodes, shards, report -------------------------------------------------------------------
    def append_shard(self, ep: Episode) -> None:
        """Each finished episode is appended (and flushed) to this process's shard file."""
        if self.shard is None:
            shard_dir = self.run_dir / "shards"
            shard_dir.mkdir(parents=True, exist_ok=True)
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            self.shard = open(shard_dir / f"{worker}-{os.getpid()}.jsonl", "a", encoding="utf-8")
        self.shard.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
        self.shard.flush()

    def record(self, ep: Episode) -> None:
        self.episodes[(ep.student, ep.condition, ep.task_uid)] = ep

    def manifest(self) -> dict:
        import importlib.metadata as md

        versions = {}
        for pkg in ("torch", "transformers", "peft", "trl", "anthropic", "numpy", "scipy", "pytest",
                    "pytest-xdist"):
            try:
                versions[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                versions[pkg] = None
        students = {}
        for name in self.specs:
            try:
                students[name] = {"spec": self.specs[name].to_dict(), "path": self.backend(name).path_info()}
            except Exception as exc:  # provenance must never break the report
                students[name] = {"spec": self.specs[name].to_dict(), "path": {"error": str(exc)}}
        s = self.settings
        return complete_manifest(self, {
                "skillbench_version": __version__, "students": students, "prompt_version": PROMPT_VERSION,
                "prompts_hash": prompts_hash(), "bench": self.bench.source, "bench_version": self.bench.version,
                "split": s.split,
                "bench_hash": self.bench.content_hash(s.split), "catalog_hash": self.catalog.content_hash(),
                "judge": self.judges.describe(), **self._scoring_manifest(),
                "conditions": s.condition, "seed": s.seed, "resamples": s.resamples,
                "packages": versions, "python": platform.python_version(), "platform": platform.platform(),
                "started": self.started, "command": command_line(),
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})

    def _scoring_manifest(self) -> dict:
        """How verdicts were scored; only recorded when some student's answers are forced."""
        if not any(self.forcing.values()):
            return {}
        from .forcing import FORCING_VERSION

        s = self.settings
        return {"scoring": {"mode": s.scoring, "answer_forcing": s.answer_forcing, "version": FORCING_VERSION,
                            "forced_students": sorted(n for n, on in self.forcing.items() if on)}}

    def all_episodes(self) -> list[Episode]:
        return [self.episodes[k] for k in sorted(self.episodes)]

    def close(self) -> None:
        """Release what the session opened: its shard file (on xdist workers too, which never run
        ``finish``) and the backends' resources (served students' HTTP clients). Safe to call twice."""
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()

    def finish(self) -> dict:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        from .runstate import merge

        merge(self)  # shards of this run: an episode whose report never arrived is not lost
        eps = self.all_episodes()
        report = build_report(eps, self.manifest(), seed=self.settings.seed, resamples=self.settings.resamples,
                              **session_report_options(self))
        from .gates import evaluate_session

        report["gates"] = evaluate_session(self, eps, report)  # CI gates and the exit status (gates.py)
        from .behaviour import finish_extras

        finish_extras(self, report, eps)  # pairwise / rubric judging, trajectory plots
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.run_dir / "report.json", report)
        _write_json(self.run_dir / "manifest.json", report["run"])
        write_episodes_file(self.run_dir / "episodes.jsonl", eps)
        self.write_html(report, eps)
        if self.settings.json:
            _write_json(Path(self.settings.json), report)
        if self.settings.episodes:
            write_episodes_file(Path(self.settings.episodes), eps)
        return report


    def write_html(self, report: dict, eps: list[Episode]) -> None:
        """The run viewer (report/html.py) from the report just written; a failure costs the page, not the run."""
        from .report.html import session_html_path, write_html

        path = session_html_path(self.settings.html, self.run_dir)
        self.html_path = None
        if path is None:
            return
        try:
            self.html_path = write_html(path, report, [e.to_dict() for e in eps], source=str(self.run_dir),
                                        bench=self.bench)
        except Exception as exc:  # noqa: BLE001
            self.write(f"[skillbench] run viewer not written: {type(exc).__name__}: {exc}")


def command_line() -> list[str]:
    """This process's command as typed (``python -m pytest ...`` rather than ``.../pytest/__main__.py ...``)."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    head = f"python -m {prog.parent.name}" if prog.name == "__main__.py" else prog.name
    return [head] + sys.argv[1:]


def write_episodes_file(path: Path, eps: list[Episode]) -> None:
    from .episodes import write_episodes

    tmp = path.with_name(path.name + ".tmp")
    write_episodes(tmp, eps)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["ItemSpec", "SkillbenchSession", "item_name", "read_episodes"]
