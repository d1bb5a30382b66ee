"""pytest hooks only: options, collection, runtest, report relay, terminal summary.

The work lives in ``session.SkillbenchSession``; each hook here is a few lines that call it. Without
``--student`` the plugin only registers its options and markers, so pytest behaves as if it were absent.
"""

from __future__ import annotations

import pytest

from .bench.catalog import CATEGORIES
from .bench.tasks import QUERY_TYPES
from .episodes import Episode
from .errors import SkillbenchError
from .session import ItemSpec, SkillbenchSession, item_name, keyword
from .settings import JUDGES, OPTION_DESTS, build_settings

SESSION_KEY = pytest.StashKey[SkillbenchSession]()
MARKERS = {"baseline": "skillbench: baseline condition (solver prompt only)",
           "curated": "skillbench: curated condition (solver prompt + SKILL block)",
           **{qt.lower(): f"skillbench: query type {qt}" for qt in QUERY_TYPES},
           **{keyword(c): f"skillbench: skill category {c}" for c in CATEGORIES}}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("skillbench", "pytest-skillbench: evaluate students on procedural skills")
    g.addoption("--student", action="append", dest="skillbench_student", default=[], metavar="NAME",
                help="student to evaluate (repeatable): a registered name, smollm2-135m, replay:PATH, "
                     "or a model/adapter directory; NAME@checkpoint-N selects a checkpoint")
    g.addoption("--condition", action="append", dest="skillbench_condition", default=[],
                choices=("baseline", "curated"), help="condition(s) to run (default both)")
    g.addoption("--judge", dest="skillbench_judge", default=None, choices=JUDGES,
                help="deterministic (ANSWER line), deterministic-mixed, llm-only or both")
    g.addoption("--bench", dest="skillbench_bench", default=None, metavar="bundled|PATH",
                help="bundled bench, a directory/JSONL in the project's format, or a reference tasks JSON")
    g.addoption("--catalog", dest="skillbench_catalog", default=None, metavar="PATH",
                help="skill catalog: a directory of YAML skills or a reference skills.json")
    g.addoption("--split", dest="skillbench_split", default=None, choices=("holdout", "train"))
    g.addoption("--max-new-tokens", dest="skillbench_max_new_tokens", default=None, type=int)
    g.addoption("--batch-size", dest="skillbench_batch_size", default=None, type=int)
    g.addoption("--device", dest="skillbench_device", default=None, help="cpu, cuda, cuda:1, mps or auto")
    g.addoption("--dtype", dest="skillbench_dtype", default=None, help="auto, float32, bfloat16 or float16")
    g.addoption("--repetition-penalty", dest="skillbench_repetition_penalty", default=None, type=float)
    g.addoption("--thinking", dest="skillbench_thinking", default=None, choices=("keep", "strip", "disable"))
    g.addoption("--skillbench-cache", dest="skillbench_cache", default=None, metavar="DIR",
                help="cache of converted models, generations and judgments")
    g.addoption("--skillbench-json", dest="skillbench_json", default=None, metavar="PATH", help="JSON report")
    g.addoption("--skillbench-episodes", dest="skillbench_episodes", default=None, metavar="PATH",
                help="JSONL of every episode")
    g.addoption("--skillbench-run-dir", dest="skillbench_run_dir", default=None, metavar="DIR",
                help="where this run's episodes, manifest and report are written "
                     "(default .skillbench/runs/<time>-<pid>)")
    g.addoption("--skillbench-seed", dest="skillbench_seed", default=None, type=int,
                help="seed of the bootstrap resampling")


def _cli_values(config: pytest.Config) -> dict:
    out = {}
    for dest, field in OPTION_DESTS.items():
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
    try:
        settings = build_settings(_cli_values(config), config.rootpath)
        session = SkillbenchSession(settings, config.rootpath, is_worker=workerinput is not None,
                                    run_dir=(workerinput or {}).get("skillbench_run_dir"),
                                    write=_live_writer(config))
    except SkillbenchError as exc:
        raise pytest.UsageError(f"skillbench: {exc}") from None
    config.stash[SESSION_KEY] = session
    if workerinput is None:
        config.pluginmanager.register(_Recorder(session), "skillbench-recorder")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "skillbench-xdist")
        # Items of one local model must share a worker, so each worker loads a model once.
        if (workerinput is None and getattr(config.option, "dist", "no") == "load"
                and any(s.is_local_model for s in session.specs.values())):
            config.option.dist = "loadgroup"


def _live_writer(config: pytest.Config):
    """Progress lines that reach the terminal even while pytest captures output."""
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

    return write


class _XdistHooks:
    def __init__(self, session: SkillbenchSession):
        self.session = session

    def pytest_configure_node(self, node) -> None:
        node.workerinput["skillbench_run_dir"] = str(self.session.run_dir)


def _session(config: pytest.Config) -> SkillbenchSession | None:
    return config.stash.get(SESSION_KEY, None)


def pytest_ignore_collect(collection_path, config: pytest.Config):
    # With --student the run is a skillbench run: the project's own test files are not collected.
    if _session(config) is not None:
        return True
    return None


class SkillbenchCollector(pytest.Collector):
    """Stands for the task file; its children are the (student, condition, task) items."""

    def collect(self):  # pragma: no cover - items are created directly
        return []


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
        if spec.student in self.sb.specs and self.sb.specs[spec.student].is_local_model:
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
        ep = self.sb.run(self.spec, self.nodeid)
        self.episode = ep
        v = ep.verdict
        if v.status == "failed":
            raise SkillbenchFailure(ep)
        if v.status == "error":
            raise SkillbenchFailure(ep)
        if v.status == "unscored":
            pytest.skip(f"unscored ({v.reason}): {v.rationale}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SkillbenchFailure):
            v = excinfo.value.args[0].verdict
            if v.status == "error":
                return f"error (infrastructure, not a failure): {v.rationale}"
            return f"expected:  {v.expected}\nextracted: {v.extracted}\nrationale: {v.rationale} [{v.judge}]"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    sb = _session(config)
    if sb is None:
        return
    name = sb.split_file_name()
    parent = SkillbenchCollector.from_parent(session, name=name, nodeid=name)
    new = []
    for spec in sb.item_specs():
        iname = item_name(spec)
        # An explicit string id parses into the same structured id --lf compares against.
        new.append(SkillbenchItem.from_parent(parent, name=iname, nodeid=f"{name}::{iname}", spec=spec))
    items[:0] = new


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
        for key in ("student", "condition"):
            report.user_properties.append((key, getattr(item.spec, key)))
        report.user_properties += [("skill", item.spec.task.skill), ("status", v.status),
                                   ("expected", v.expected), ("extracted", v.extracted or "")]


def pytest_report_teststatus(report, config):
    ep = getattr(report, "skillbench", None)
    if ep and report.when == "call":
        status = ep["verdict"]["status"]
        if status == "unscored":
            return "unscored", "U", "UNSCORED"
        if status == "error":
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
    if sb is None or sb.is_worker:
        return
    sb.report = sb.finish()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    sb = _session(config)
    report = getattr(sb, "report", None) if sb else None
    if report is None:
        return
    from .report.terminal import render

    terminalreporter.section("skillbench")
    for line in render(report):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"run directory: {sb.run_dir}")
