"""One object per pytest session: settings, bench, students, scheduling and aggregation.

The pytest hooks in ``plugin.py`` are thin; they call the methods here. On an xdist worker the session
generates and judges its items and ships each episode on its test report; the controller (or a plain
run) aggregates the episodes and builds the report. Every change to the session's state is made by a method
here: the modules it calls (runs.state, rejudge, gates, analysis, the studies) take values and return values.
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
from .analysis import check_declared_pairs, stored_base_students
from .backends import STUDENT_BACKENDS
from .bench import Bench, Catalog, Task, load_bench, load_catalog
from .cache import Store
from .diagnostics import apply_thinking
from .episodes import Episode, Reason, Status, Verdict, read_episodes
from .errors import SkillbenchError
from .forcing import FORCING_VERSION, combine, target_for
from .gates import GatePlan, build_plan, check_reference_paths, evaluate, render_gates
from .generation import ProgressPrinter, generate_cached
from .judges.runner import JudgeItem, build_runner, make_backend
from .lineage import base_map, declared_sft_pairs, parse_sft_pairs
from .prompts import PROMPT_VERSION, messages, prompts_hash
from .provenance import complete_manifest
from .rejudge import find_source_run, stored_responses
from .report.html import session_html_path, write_html
from .report.summary import build_report
from .report.terminal import render as render_terminal
from .runs import state as runstate
from .runs.store import write_episodes_file, write_json
from .settings import Settings
from .students.base import Backend, GenRequest, GenResult
from .students.embedded import default_cache_dir
from .students.hf import ModelPool
from .students.registry import StudentSpec, resolve_students
from .studies.behaviour import bench_extra
from .studies.drift import asks_for_json, episode_metrics
from .studies.pairwise import pairwise_against_base, prompt_index, rubric_scores
from .studies.probe import (
    PROBE_CONDITION,
    PROBE_SYSTEM,
    PROBE_VERSION,
    PremiseJudge,
    load_probe,
    probe_path,
    score,
)
from .studies.probe import messages as probe_messages
from .studies.trajectory import loss_vs_quality, write_plots


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
        self.resume_note: str | None = None
        # on an xdist worker: () -> keys of the items queued on this worker (set by the plugin), or None
        self.queued = None
        self.report: dict | None = None  # set by finish
        self.gate_plan: GatePlan | None = None  # parsed at start on the controller (plan_gates), else at finish
        self.html_path: Path | None = None
        # Validate every student up front: one clear error at session start, never one per item. (An xdist
        # worker builds a backend when it first runs one of its items: the controller has validated them, and a
        # worker that never runs a local model's items should not import torch for it.)
        for spec in self.specs.values():
            if not is_worker:
                self.backend(spec.name)
        if settings.rejudge:  # reuse the stored run's responses; re-judge its error / unscored episodes
            self._attach_rejudge()
        self.stored_bases = self._start_checks()  # SFT pairs: parsed, bases found, paths matched
        self._setup_studies()  # --probe battery; the judge of --pairwise / --rubric

    # -- set-up ----------------------------------------------------------------------------------
    def _check_judge_mode(self) -> None:
        """Build the judge runner: an LLM judge's backend and credentials are checked here, at session start."""
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

    def _attach_rejudge(self) -> None:
        """``--skillbench-rejudge``: load the source run's episodes; responses are never regenerated."""
        src = find_source_run(self)
        reuse, responses, n = stored_responses(src, self.specs)
        self.rejudge_from = src
        self.judges.rejudged_from = str(src)
        self.rejudge_reuse.update(reuse)
        self.responses.update(responses)
        self.write(f"[skillbench] --skillbench-rejudge: {src}: reusing {len(self.rejudge_reuse)} scored "
                   f"episode(s), re-judging {n} error/unscored episode(s)")

    def _start_checks(self) -> dict:
        """At session start: parse ``--sft-pair``, find bases stored in earlier runs, and refuse (one clear
        error naming each difference) an SFT pair whose inference paths differ unless ``--allow-path-mismatch``.

        Returns the stored bases (``extra_students`` for ``build_report``).
        """
        s = self.settings
        parse_sft_pairs(s.sft_pair)
        manifest = self.manifest()
        pairs = declared_sft_pairs(manifest, s.sft_pair)
        if not pairs:
            return {}
        dirs = [self.root / ".skillbench" / "runs", Path(self.run_dir).parent]
        extra = stored_base_students(manifest, s.sft_pair, set(self.specs), dirs, exclude=self.run_dir)
        check_declared_pairs(manifest, s.sft_pair, extra, allow=bool(s.allow_path_mismatch))
        return extra

    def report_options(self) -> dict:
        """``build_report`` options of a plugin run (never raises at session end: refusals are recorded)."""
        s = self.settings
        return {"sft_pairs": list(s.sft_pair), "allow_path_mismatch": bool(s.allow_path_mismatch),
                "extra_students": self.stored_bases or {}, "strict": False, "catalog": self.catalog}

    def _setup_studies(self) -> None:
        """The probe battery (``--probe``) and, for ``--pairwise`` / ``--rubric`` without an LLM ``--judge``
        mode, the judge backend, built now so credentials are checked before any generation."""
        s = self.settings
        self.probe_items = None
        self.probe_index = {}
        self.probe_source = None
        self.behaviour_backend = None
        self._premise = None
        if s.probe:
            self.probe_items = load_probe(s.probe)
            self.probe_index = {i.id: i for i in self.probe_items}
            self.probe_source = str(probe_path(s.probe))
        if (s.pairwise or s.rubric) and getattr(self.judges, "backend", None) is None:
            self.behaviour_backend = make_backend(s, cache_dir=self.cache_dir, pool=lambda: self.pool,
                                                  root=self.root)

    def llm_backend(self):
        """The LLM judge of the session (its ``--judge`` backend, else the one built for pairwise / rubric)."""
        return getattr(self.judges, "backend", None) or self.behaviour_backend

    # -- resume, gates (called by the plugin) -------------------------------------------------------
    def prepare_resume(self) -> None:
        """Controller (or plain run) start: choose / claim the run directory and load reusable episodes."""
        key = runstate.resume_key(self)
        self.resume_key = key
        self.run_dir, self.resume_shards, note = runstate.prepare(
            self.run_dir, key, explicit=bool(self.settings.run_dir), write=self.write)
        if note:
            self.resume_note = note
        self.load_previous(self.resume_shards)
        if self.previous:
            done = sum(e.verdict.status != Status.ERROR for e in self.previous.values())
            self.resume_note = f"resuming {self.run_dir}: {done} finished episode(s) are reused"
            self.write(f"[skillbench] {self.resume_note}")

    def set_worker_queue(self, queued) -> None:
        """On an xdist worker: ``queued() -> keys of the items queued here`` (or None), read by ``_pending``."""
        self.queued = queued

    def narrow_tasks(self, tasks: list[Task]) -> None:
        """Evaluate only these tasks of the split (``skillbench trace --skill / --limit``)."""
        self.tasks = list(tasks)

    def load_previous(self, paths) -> None:
        """Finished episodes of earlier processes of this run (reused by ``run``)."""
        self.previous = runstate.finished_episodes(paths)

    def plan_gates(self) -> None:
        """Parse the gates and refuse a reference generated or judged differently (one usage error each)."""
        self.gate_plan = build_plan(self)
        check_reference_paths(self, self.gate_plan)

    def _evaluate_gates(self, episodes: list[Episode], report: dict) -> dict:
        if self.gate_plan is None:
            self.gate_plan = build_plan(self)
        s = self.settings
        return evaluate(self.gate_plan, episodes, report.get("run") or {}, seed=s.seed, resamples=s.resamples,
                        allow_path_mismatch=bool(s.allow_path_mismatch),
                        students=[n for n in self.specs if any(e.student == n for e in episodes)])

    @property
    def pool(self):
        if self._pool is None:
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
        if self.probe_items is not None:  # --probe: the probe battery replaces the bench
            return [ItemSpec(student, PROBE_CONDITION, item.task) for student in self.specs
                    for item in self.probe_items]
        return [ItemSpec(student, cond, task) for student in self.specs for cond in self.settings.condition
                for task in self.tasks]

    @staticmethod
    def item_name(spec: ItemSpec) -> str:
        return item_name(spec)

    def split_file_name(self) -> str:
        if self.probe_source:
            return Path(self.probe_source).name
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
        nodeid = self.plain_nodeid(nodeid)
        spec = self.spec_by_nodeid().get(nodeid)
        if spec is None:
            return None
        verdict = Verdict(status=Status.ERROR, expected=spec.task.answer, judge="none", rationale=message,
                          reason=runstate.CRASH_REASON)
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
            except Exception:
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
        force = self.forcing.get(student, False)
        reqs = [GenRequest(s.task.task_uid, s.condition, self._request_messages(s),
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

    def _request_messages(self, spec: ItemSpec) -> list[dict[str, str]]:
        if spec.condition == PROBE_CONDITION:
            return probe_messages(self.probe_index[spec.task.task_uid])
        return messages(spec.task, spec.condition, self.catalog)

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
            return Verdict(status=Status.ERROR, expected=spec.task.answer, judge="none",
                           rationale=response.error or "no response", reason=Reason.GENERATION_ERROR)
        verdict, extra = self.judges.outcome(spec.task, response.text, spec.condition)
        if extra:
            self._judge_extra[spec.key] = extra
        if self.forcing.get(spec.student) and verdict.judge == "deterministic":
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
        if spec.condition == PROBE_CONDITION:
            return self._run_probe(spec, nodeid)
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
        ep.extra.update(bench_extra(spec, res))  # drift metrics: length, JSON, slop, repetition, refusal
        self.append_shard(ep)
        return ep

    def _premise_judge(self) -> PremiseJudge:
        if self._premise is None:
            backend = self.llm_backend()
            store = Store(self.cache_dir, "judgments") if backend is not None else None
            self._premise = PremiseJudge(backend, store, self.write)
        return self._premise

    def _run_probe(self, spec: ItemSpec, nodeid: str) -> Episode:
        """One probe item: generate (batched and cached with the student's other items), score, record."""
        res = self.response_for(spec)
        item = self.probe_index[spec.task.task_uid]
        policy = self.specs[spec.student].thinking if spec.student in self.specs else "keep"
        pj = self._premise_judge()
        if pj.caller is not None:  # judge this student's false-premise answers in one batch
            pairs = []
            for s in self.selected.get(spec.student, []):
                it = self.probe_index.get(s.task.task_uid)
                r = self.responses.get(s.key)
                if it is not None and it.kind == "false_premise" and r is not None and r.text is not None:
                    pairs.append((it, apply_thinking(r.text, policy)[0]))
            pj.prepare(pairs)
        text = apply_thinking(res.text, policy)[0] if res.text is not None else None
        verdict, metrics = score(item, text, pj)
        if res.text is None:
            verdict.rationale = res.error or verdict.rationale
        ep = Episode(student=spec.student, condition=spec.condition, task_uid=item.id, skill=spec.task.skill,
                     query_type=spec.task.query_type, response=res.text, verdict=verdict, category="",
                     nodeid=nodeid, gen_tokens=res.gen_tokens,
                     extra={"probe": metrics,
                            "drift": episode_metrics(res.text, res.gen_tokens, asks_json=asks_for_json(item.prompt))})
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
        # shards of this run: an episode whose report never arrived is not lost
        runstate.merge_shards(self.episodes, self.run_dir, {s.key for specs in self.selected.values() for s in specs})
        eps = self.all_episodes()
        report = build_report(eps, self.manifest(), seed=self.settings.seed, resamples=self.settings.resamples,
                              **self.report_options())
        report["gates"] = self._evaluate_gates(eps, report)  # CI gates and the exit status (gates.py)
        self._finish_studies(report, eps)  # pairwise / rubric judging, trajectory plots
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "report.json", report)
        write_json(self.run_dir / "manifest.json", report["run"])
        write_episodes_file(self.run_dir / "episodes.jsonl", eps)
        self.write_html(report, eps)
        if self.settings.json:
            write_json(Path(self.settings.json), report)
        if self.settings.episodes:
            write_episodes_file(Path(self.settings.episodes), eps)
        self.report = report
        return report

    def _finish_studies(self, report: dict, episodes: list[Episode]) -> None:
        """Session end (controller): pairwise / rubric judging, loss vs quality with win-rates, plots."""
        s = self.settings
        if self.probe_items is not None:
            report["run"]["probe"] = {"source": self.probe_source, "version": PROBE_VERSION,
                                      "system_prompt": PROBE_SYSTEM, "items": len(self.probe_items)}
            if report.get("probe"):
                report["probe"]["source"] = self.probe_source
        if s.pairwise or s.rubric:
            backend = self.llm_backend()
            prompts = prompt_index(self.tasks, self.probe_items or [])
            store = Store(self.cache_dir, "judgments")
            try:
                if s.pairwise:
                    bases = base_map(sorted({e.student for e in episodes}), report.get("run") or {})
                    report["pairwise"] = pairwise_against_base(episodes, bases, prompts, backend, store=store,
                                                               seed=s.seed, write=self.write)
                    if not bases:
                        report["pairwise"]["note"] = ("no student has its base in this run (base_student, "
                                                      "--sft-pair or NAME@base)")
                if s.rubric:
                    report["rubric"] = rubric_scores(episodes, prompts, backend, store=store, write=self.write)
            except SkillbenchError as exc:  # the bench report must survive a judge failure
                report.setdefault("warnings", []).append(f"pairwise/rubric judging failed: {exc}")
            lq = loss_vs_quality(report.get("run") or {}, report.get("students") or {},
                                 (report.get("pairwise") or {}).get("students"))
            if lq:
                report["loss_vs_quality"] = lq
        if report.get("trajectory"):
            try:
                write_plots(report, self.run_dir)
            except Exception as exc:
                report.setdefault("warnings", []).append(f"trajectory plot failed: {type(exc).__name__}: {exc}")

    def terminal_lines(self, report: dict) -> list[str]:
        """The end-of-session terminal section (report tables, run directory, viewer, resume note)."""
        lines = list(render_terminal(report))
        lines.append(f"run directory: {self.run_dir}")
        if self.html_path:
            lines.append(f"run viewer: {self.html_path}")
        if self.resume_note:
            lines.append(self.resume_note)
        return lines + render_gates(report.get("gates"))  # the report ends with one line per gate

    def write_html(self, report: dict, eps: list[Episode]) -> None:
        """The run viewer (report/html.py) from the report just written; a failure costs the page, not the run."""
        path = session_html_path(self.settings.html, self.run_dir)
        self.html_path = None
        if path is None:
            return
        try:
            self.html_path = write_html(path, report, [e.to_dict() for e in eps], source=str(self.run_dir),
                                        bench=self.bench)
        except Exception as exc:
            self.write(f"[skillbench] run viewer not written: {type(exc).__name__}: {exc}")


def command_line() -> list[str]:
    """This process's command as typed (``python -m pytest ...`` rather than ``.../pytest/__main__.py ...``)."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    head = f"python -m {prog.parent.name}" if prog.name == "__main__.py" else prog.name
    return [head] + sys.argv[1:]


__all__ = ["ItemSpec", "SkillbenchSession", "item_name", "read_episodes"]
