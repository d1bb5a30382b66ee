"""pytest hooks only: options, collection, runtest, report relay, terminal summary.

The work lives in ``session.SkillbenchSession``; each hook here is a few lines that call it. Without
``--student`` the plugin only registers its options and markers, so pytest behaves as if it were absent.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import hookspec
from .bench.catalog import CATEGORIES
from .bench.tasks import QUERY_TYPES
from .episodes import Episode, Status
from .errors import SkillbenchError
from .settings import build_settings, has_skillbench_table, option_dests, option_specs
from .students.registry import resolve_students

if TYPE_CHECKING:  # the session module pulls in numpy and the whole run: imported only when a run is configured
    from .session import ItemSpec, SkillbenchSession


def keyword(text: str) -> str:
    """``modus-ponens`` -> ``modus_ponens`` so that ``-k modus_ponens`` matches."""
    return "".join(ch if ch.isalnum() else "_" for ch in text)


SESSION_KEY = pytest.StashKey["SkillbenchSession"]()
MARKERS = {"baseline": "skillbench: baseline condition (solver prompt only)",
           "curated": "skillbench: curated condition (solver prompt + SKILL block)",
           **{qt.lower(): f"skillbench: query type {qt}" for qt in QUERY_TYPES},
           **{keyword(c): f"skillbench: skill category {c}" for c in CATEGORIES},
           "probe": "skillbench: generality-probe item (--probe; generic system prompt, outside the bench)"}


def pytest_addoption(parser: pytest.Parser) -> None:
    """One option per ``opt()`` field of ``settings.Settings`` (flag, dest, help with its default, choices)."""
    g = parser.getgroup("skillbench", "pytest-skillbench: evaluate students on procedural skills")
    for o in option_specs():
        kw: dict = {"dest": o.dest, "help": o.help}
        if o.kind == "list":
            kw.update(action="append", default=[])
        elif o.kind == "bool":
            kw.update(action="store_true", default=False)
        else:
            kw["default"] = None
            if o.kind in ("int", "float"):
                kw["type"] = int if o.kind == "int" else float
        if o.metavar:
            kw["metavar"] = o.metavar
        if o.choices:
            kw["choices"] = o.choices
        g.addoption(o.flag, **kw)


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspec)


def _project_root(config: pytest.Config):
    """Where [tool.skillbench] lives.

    The nearest pyproject.toml with a ``[tool.skillbench]`` table, walking up from the invocation directory
    (so a project nested inside another repository uses its own registry even when pytest takes its ini
    file from the outer repository); else the ini file's directory, the invocation directory or rootdir,
    whichever holds a pyproject.toml; else the ini file's directory or the invocation directory. pytest may
    pick a rootdir from an existing path given as an option value (e.g. --skillbench-cache DIR, --bench FILE),
    so rootdir alone would miss the project's pyproject.toml, or put the run inside a data folder.
    """
    start = Path(config.invocation_params.dir)
    for c in (start, *start.parents):
        if has_skillbench_table(c / "pyproject.toml"):
            return c
    cands = []
    if config.inipath is not None:
        cands.append(config.inipath.parent)
    cands += [config.invocation_params.dir, config.rootpath]
    for c in cands:
        if (c / "pyproject.toml").is_file():
            return c
    # No pyproject.toml in reach: pytest's rootdir may then be the folder of an option's path value (the
    # --bench file's data folder), so runs go under the ini file's directory or where pytest was invoked.
    return config.inipath.parent if config.inipath is not None else Path(config.invocation_params.dir)


def _cli_values(config: pytest.Config) -> dict:
    out = {}
    for dest, field in option_dests().items():
        try:
            out[field] = config.getoption(dest)
        except ValueError:
            out[field] = None
    return out


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    if not config.getoption("skillbench_student"):
        return
    workerinput = getattr(config, "workerinput", None)
    # The one deferred import of the package's own modules (tests/test_architecture.py allows it): the session
    # brings numpy and the whole run machinery, which a pytest run without --student must not pay for.
    from .session import SkillbenchSession

    try:
        root = _project_root(config)
        settings = build_settings(_cli_values(config), root)
        session = SkillbenchSession(settings, root, is_worker=workerinput is not None,
                                    run_dir=(workerinput or {}).get("skillbench_run_dir"),
                                    write=_live_writer(config))
    except SkillbenchError as exc:
        raise pytest.UsageError(f"skillbench: {exc}") from None
    try:
        _prepare_run(config, session, workerinput)
    except SkillbenchError as exc:
        raise pytest.UsageError(f"skillbench: {exc}") from None
    config.stash[SESSION_KEY] = session
    session.judges.hook = lambda task, response, condition: config.hook.pytest_skillbench_judge(
        task=task, response=response, condition=condition, config=config)
    if workerinput is None:
        config.pluginmanager.register(_Recorder(session), "skillbench-recorder")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "skillbench-xdist")
        # Items of one local model must share a worker, so each worker loads a model once; with an LLM
        # judge, items of one student share a worker so its judge calls are issued once, concurrently.
        grouped = any(s.is_local_model for s in session.specs.values()) or session.judges.backend is not None
        if workerinput is None and getattr(config.option, "dist", "no") == "load" and grouped:
            config.option.dist = "loadgroup"


def _prepare_run(config: pytest.Config, session: SkillbenchSession, workerinput: dict | None) -> None:
    """Gates (parsed and path-checked at start), resume of an interrupted run, the worker's queue."""
    if workerinput is None:
        session.plan_gates()
        if not config.option.collectonly:
            session.prepare_resume()
    else:
        session.load_previous(workerinput.get("skillbench_resume_shards") or [])
        session.set_worker_queue(_worker_queue(config))


def _worker_queue(config: pytest.Config):
    """() -> keys of the items this xdist worker has queued (current, next and waiting), or None."""

    def queued():
        interactor = next((p for p in config.pluginmanager.get_plugins()
                           if type(p).__name__ == "WorkerInteractor" and hasattr(p, "torun")), None)
        if interactor is None or not hasattr(interactor, "session"):
            return None
        with interactor.torun.lock() as q:
            idx = [i for i in q if isinstance(i, int)]
        for attr in ("item_index", "nextitem_index"):
            i = getattr(interactor, attr, None)
            if isinstance(i, int):
                idx.append(i)
        items = interactor.session.items
        return {items[i].spec.key for i in idx if 0 <= i < len(items) and isinstance(items[i], SkillbenchItem)}

    return queued


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config):
    """``-n auto`` with local (hf) students: one worker per GPU (else per core), never more than there are
    local models to place -- each worker loads its model once; served students take any worker."""
    import os

    if not config.getoption("skillbench_student", None) or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    try:
        root = _project_root(config)
        settings = build_settings(_cli_values(config), root)
        specs = [sp for name in settings.student for sp in resolve_students(name, settings.students, root)]
    except Exception:
        return None
    local = {sp.name for sp in specs if sp.is_local_model}
    if not local:
        return None
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        gpus = 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cap = gpus or cores
    served = any(not sp.is_local_model for sp in specs)
    return max(1, cap if served else min(cap, len(local)))


def _live_writer(config: pytest.Config):
    """Progress lines that reach the terminal even while pytest captures output. On a terminal the writer
    also carries ``rewrite(line, final)``: the progress printer then updates one line in place through
    pytest's terminal writer (ended by ``final``) instead of printing a line every few seconds."""
    import sys

    def write(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        tr = config.pluginmanager.getplugin("terminalreporter")
        if tr is not None and capman is not None and not hasattr(config, "workerinput"):
            with capman.global_and_fixture_disabled():
                tr.write_line(line)
        else:
            sys.__stderr__.write(line + "\n")
            sys.__stderr__.flush()

    def isatty() -> bool:  # asked when generation starts: the terminal reporter is configured after us
        tr = config.pluginmanager.getplugin("terminalreporter")
        return tr is not None and bool(getattr(tr, "isatty", False)) and not hasattr(config, "workerinput")

    def rewrite(line: str, final: bool) -> None:
        tr = config.pluginmanager.getplugin("terminalreporter")
        capman = config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else nullcontext():
            tr.rewrite(line, erase=True)
            if final:
                tr.write_line("")

    write.isatty, write.rewrite = isatty, rewrite  # type: ignore[attr-defined]
    return write


class _XdistHooks:
    def __init__(self, session: SkillbenchSession):
        self.session = session

    def pytest_configure_node(self, node) -> None:
        node.workerinput["skillbench_run_dir"] = str(self.session.run_dir)
        node.workerinput["skillbench_resume_shards"] = list(self.session.resume_shards)

    def pytest_xdist_make_scheduler(self, config, log):
        """``--dist loadgroup``: all items of one grouped student (a local model; every student when an LLM judge
        runs, as the ``xdist_group`` marks say) form one scope, so one worker runs them and loads the model
        once. (Our own scope function: pytest-xdist 3.8 turns ``xdist_group`` marks into an ``@group`` node-id
        suffix by assigning ``item._nodeid``, which pytest 9.2 ignores.)"""
        judged = getattr(getattr(self.session, "judges", None), "backend", None) is not None
        local = {n for n, s in self.session.specs.items() if s.is_local_model or judged}
        if config.getvalue("dist") != "loadgroup" or not local:
            return None
        from xdist.scheduler import LoadGroupScheduling

        by_id = self.session.spec_by_nodeid()
        plain = self.session.plain_nodeid

        class ModelGroupScheduling(LoadGroupScheduling):
            def _split_scope(self, nodeid: str) -> str:
                spec = by_id.get(plain(nodeid))
                if spec is not None and spec.student in local:
                    return f"skillbench-model:{spec.student}"
                return super()._split_scope(nodeid)

        return ModelGroupScheduling(config, log)

    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        # the controller collects nothing itself: the selection (after -k/-m/--lf) comes from the workers
        if not any(self.session.selected.values()):
            self.session.set_selected_nodeids(ids)

    def pytest_handlecrashitem(self, crashitem, report, sched) -> None:
        """A worker died while running ``crashitem``: its episode is ``error`` (infrastructure), the rest of
        that worker's items are rescheduled by xdist, and the report is still printed."""
        spec = self.session.spec_by_nodeid().get(self.session.plain_nodeid(crashitem))
        done = self.session.episodes.get(spec.key) if spec is not None else None
        if done is not None and done.verdict.status != Status.ERROR:
            return  # its episode had already arrived: the worker died after finishing it
        ep = self.session.crash_episode(crashitem, str(report.longrepr))
        if ep is not None:
            report.skillbench = ep.to_dict()
            report.when = "call"


def _session(config: pytest.Config) -> SkillbenchSession | None:
    return config.stash.get(SESSION_KEY, None)


def pytest_ignore_collect(collection_path, config: pytest.Config):
    # With --student the run is a skillbench run: the project's own test files are not collected.
    if _session(config) is not None:
        return True
    return None


class SkillbenchCollector(pytest.Collector):
    """Stands for the task file; its children are the (student, condition, task) items.

    A real collector in the session's collection tree, so pytest counts its items like any others
    (``collected 400 items / 390 deselected / 10 selected``) and ``--co``, ``-q``, ``--lf``, xdist and
    JUnit see them. Not a ``pytest.File``: ``--lf`` would then skip it whenever the failures it
    remembers lie in another file."""

    def collect(self):
        sb = self.config.stash[SESSION_KEY]
        for spec in sb.item_specs():
            iname = sb.item_name(spec)
            # An explicit string id parses into the same structured id --lf compares against.
            yield SkillbenchItem.from_parent(self, name=iname, nodeid=f"{self.nodeid}::{iname}", spec=spec)


class SkillbenchFailure(Exception):
    pass


class SkillbenchItem(pytest.Item):
    def __init__(self, *, spec: ItemSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.episode: Episode | None = None
        for mark in (spec.condition, spec.task.query_type.lower(), keyword(self.category)):
            if mark:
                self.add_marker(mark)
        if spec.student in self.sb.specs and (self.sb.specs[spec.student].is_local_model
                                              or self.sb.judges.backend is not None):
            self.add_marker(pytest.mark.xdist_group(keyword(spec.student)))
        self.extra_keyword_matches.update({keyword(spec.task.skill), keyword(spec.student), spec.task.task_uid})

    @property
    def sb(self) -> SkillbenchSession:
        return self.config.stash[SESSION_KEY]

    @property
    def category(self) -> str:
        skill = self.spec.task.skill
        return self.sb.catalog[skill].category if skill in self.sb.catalog else ""

    def runtest(self) -> None:
        # the id without xdist's "@group" suffix: episodes are the same for any -n
        ep = self.sb.run(self.spec, self.sb.nodeid_of(self.spec))
        self.episode = ep
        v = ep.verdict
        if v.status == Status.FAILED:
            raise SkillbenchFailure(ep)
        if v.status == Status.ERROR:
            raise SkillbenchFailure(ep)
        if v.status == Status.UNSCORED:
            pytest.skip(f"unscored ({v.reason}): {v.rationale}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SkillbenchFailure):
            v = excinfo.value.args[0].verdict
            if v.status == Status.ERROR:
                return f"error (infrastructure, not a failure): {v.rationale}"
            return f"expected:  {v.expected}\nextracted: {v.extracted}\nrationale: {v.rationale} [{v.judge}]"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """The session's own collection report gains the bench collector as its first child, so its items are
    collected (and counted) through pytest's normal collection, before -k/-m/--lf deselect any."""
    report = yield
    if isinstance(collector, pytest.Session):
        sb = _session(collector.config)
        if sb is not None and report.passed:
            name = sb.split_file_name()
            report.result.insert(0, SkillbenchCollector.from_parent(collector, name=name, nodeid=name))
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    sb = _session(session.config)
    if sb is not None:
        sb.set_selected([i.spec for i in session.items if isinstance(i, SkillbenchItem)])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if isinstance(item, SkillbenchItem) and call.when == "call" and item.episode is not None:
        report = outcome.get_result()
        report.skillbench = item.episode.to_dict()
        v = item.episode.verdict
        props = [("student", item.spec.student), ("condition", item.spec.condition), ("skill", item.spec.task.skill),
                 ("status", v.status), ("expected", v.expected), ("extracted", v.extracted or "")]
        report.user_properties += props
        # JUnit XML writes the properties of the *teardown* report, which copies the item's list
        item.user_properties += [p for p in props if p not in item.user_properties]


def pytest_report_teststatus(report, config):
    ep = getattr(report, "skillbench", None)
    if ep and report.when == "call":
        status = ep["verdict"]["status"]
        if status == Status.UNSCORED:
            return "unscored", "U", "UNSCORED"
        if status == Status.ERROR:
            return "error", "E", "ERROR"
    return None


class _Recorder:
    """Controller side (or a plain run): collects the episodes that travel on test reports."""

    def __init__(self, session: SkillbenchSession):
        self.session = session

    def pytest_runtest_logreport(self, report) -> None:
        ep = getattr(report, "skillbench", None)
        if ep is not None and report.when == "call":
            self.session.record(Episode.from_dict(ep))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    sb = _session(session.config)
    if sb is None or sb.is_worker or session.config.option.collectonly:
        return  # --co runs nothing: no report, no run directory
    sb.finish()  # kept as sb.report
    _prune_phase_reports(session.config, sb)
    # Exit status for CI (gates.py): 3 episodes in error (infrastructure), else with gates 0 all hold / 1 one
    # failed; without gates and errors pytest's own status stands. Interrupts and usage errors are kept.
    code = (sb.report.get("gates") or {}).get("exit_code")
    if code is not None and int(session.exitstatus) in (0, 1):
        session.exitstatus = code


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the session's shard file and HTTP clients, after the report (and on xdist workers)."""
    sb = _session(config)
    if sb is not None:
        sb.close()


def _prune_phase_reports(config: pytest.Config, sb: SkillbenchSession) -> None:
    """Drop the silent setup/teardown reports of skillbench items from the terminal reporter's statistics.

    pytest's failure summary looks up each failure's teardown report by scanning every setup/teardown report
    (``_get_teardown_reports``), O(failures x items): with 40,000 items and 3,200 failures that scan was most
    of the session's time (benchmarks/RESULTS.md). A passed setup/teardown report without captured sections
    prints nothing there and is not counted in the summary line (its category is ""), so removing those of
    skillbench items changes no output. Other tests' reports are left alone.
    """
    tr = config.pluginmanager.get_plugin("terminalreporter")
    phase = getattr(tr, "stats", {}).get("") if tr is not None else None
    if not phase:
        return
    ours = set(sb.spec_by_nodeid())
    plain = sb.plain_nodeid
    phase[:] = [r for r in phase
                if not (getattr(r, "when", None) in ("setup", "teardown") and getattr(r, "passed", False)
                        and not getattr(r, "sections", None) and plain(getattr(r, "nodeid", "")) in ours)]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    sb = _session(config)
    report = getattr(sb, "report", None) if sb else None
    if report is None:
        return
    terminalreporter.section("skillbench")
    for line in sb.terminal_lines(report):  # report tables, run directory, viewer, resume note, gates
        terminalreporter.write_line(line)
