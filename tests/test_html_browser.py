"""The run viewer in a real browser: headless Debian Chromium driven by Playwright.

On a replay run of the bundled bench with two students (one response carries an XSS payload) the page loads
with no console error, its summary numbers equal report.json, each filter shows the expected rows, search and
deep links find a task, the payload shows as text and runs nothing, and a screenshot of the summary is written
under the run directory. With ``SKILLBENCH_VIEW_RUN=RUN_DIR`` the same checks run on that stored run (e.g. the
main job's) and its screenshot lands in ``RUN_DIR/report-summary.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_replay

CHROMIUM = os.environ.get("SKILLBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

PAYLOAD = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2; alert(1)\">"


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def _pts(x):
    return "–" if x is None else f"{100 * x:+.1f}"


def _pval(x):
    return "–" if x is None else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


def _expected_text(path: list, value) -> str:
    """How the page must print a report number (written here independently of report/html.py)."""
    last = path[-1]
    if last == "p":
        return _pval(value)
    if path[-2:] == ["delta", "value"] or path[-2:] == ["delta_lift", "value"] or last == "format_gap":
        return _pts(value)
    if last in ("pass_rate", "format_compliance", "forced_share", "chance_rate"):
        return _pct(value)
    return str(value)


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory, bundled_bench):
    """A replay run of the bundled bench with students alpha and beta; one beta response carries PAYLOAD."""
    tmp = tmp_path_factory.mktemp("viewer")
    tasks = bundled_bench.split("holdout")
    a = write_replay(tmp / "alpha.jsonl", tasks, student="alpha", seed=11)
    b = write_replay(tmp / "beta.jsonl", tasks, student="beta", seed=12, p_right=0.7)
    victim = next(t for t in tasks if t.query_type == "YES_NO")
    lines = [json.loads(line) for line in b.read_text().splitlines()]
    for row in lines:
        if row["task_uid"] == victim.task_uid and row["condition"] == "curated":
            row["response"] = f"{PAYLOAD}\nANSWER: {victim.answer}"
    b.write_text("".join(json.dumps(r) + "\n" for r in lines))
    run_dir = tmp / "run"
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
                          "--student", f"replay:{a}", "--student", f"replay:{b}", "--skillbench-run-dir",
                          str(run_dir)], cwd=tmp, check=False, capture_output=True, text=True, timeout=900)
    assert (run_dir / "report.html").is_file(), res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    eps = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().split("\n") if line.strip()]
    return {"dir": run_dir, "report": report, "episodes": eps, "victim": victim, "tasks": tasks}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                              args=ARGS)
        yield b
        b.close()


class Page:
    """A page with its console errors, page errors and dialogs recorded."""

    def __init__(self, browser, url: str):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector("#count[data-count]")

    def rows(self) -> int:
        return self.page.locator("#task-rows tr.row").count()

    def count(self) -> int:
        return int(self.page.get_attribute("#count", "data-count"))

    def select(self, sel: str, value: str) -> None:
        self.page.select_option(sel, value)

    def close(self) -> None:
        self.page.close()


def _url(run_dir: Path, fragment: str = "") -> str:
    return (run_dir / "report.html").resolve().as_uri() + fragment


def _check_summary(pg: Page, report: dict) -> int:
    cells = pg.page.eval_on_selector_all(
        "[data-path]", "els => els.map(e => [e.getAttribute('data-path'), e.textContent.trim()])")
    for path_json, text in cells:
        path = json.loads(path_json)
        node = report
        for k in path:
            node = node[k]
        assert text == _expected_text(path, node), (path, text, node)
    return len(cells)


def test_page_loads_clean_and_summary_equals_report_json(browser, replay_run):
    run_dir, report = replay_run["dir"], replay_run["report"]
    assert (run_dir / "report.html").stat().st_size <= 5 * 1024 * 1024
    pg = Page(browser, _url(run_dir))
    try:
        assert pg.errors == [] and pg.dialogs == []
        assert all(u.startswith(("file:", "data:", "about:")) for u in pg.requests), pg.requests  # no network
        n = _check_summary(pg, report)
        # every student x condition: n, scored, pass rate, format, unscored, errors; per student Δ, p, pairs
        assert n >= 2 * (2 * 6 + 3)
        assert pg.count() == len(replay_run["episodes"]) == 800 and pg.rows() == 800
        shot = run_dir / "report-summary.png"
        pg.page.locator("#summary").screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    finally:
        pg.close()


def test_each_filter_shows_the_expected_rows(browser, replay_run):
    eps, report = replay_run["episodes"], replay_run["report"]
    status = {(e["student"], e["condition"], e["task_uid"]): e["verdict"]["status"] for e in eps}

    def cond_flip(e):
        other = "curated" if e["condition"] == "baseline" else "baseline"
        pair = {e["verdict"]["status"], status.get((e["student"], other, e["task_uid"]))}
        return pair == {"passed", "failed"}

    skill = eps[0]["skill"]
    cases = [("#f-student", "beta", lambda e: e["student"] == "beta"),
             ("#f-condition", "curated", lambda e: e["condition"] == "curated"),
             ("#f-status", "unscored", lambda e: e["verdict"]["status"] == "unscored"),
             ("#f-status", "failed", lambda e: e["verdict"]["status"] == "failed"),
             ("#f-skill", skill, lambda e: e["skill"] == skill),
             ("#f-query_type", "RANKING", lambda e: e["query_type"] == "RANKING"),
             ("#f-flipped", "cond", cond_flip)]
    pg = Page(browser, _url(replay_run["dir"]))
    try:
        for sel, value, pred in cases:
            pg.page.click("#f-reset")
            assert pg.rows() == 800
            pg.select(sel, value)
            want = sum(map(pred, eps))
            assert 0 < want < 800, (sel, value)
            assert pg.count() == want and pg.rows() == want, (sel, value)
        # the flipped rows are the discordant pairs McNemar counts: 2 rows (one per condition) per pair
        flips = sum(map(cond_flip, eps))
        assert flips == 2 * sum(st["delta"]["mcnemar"]["b"] + st["delta"]["mcnemar"]["c"]
                                for st in report["students"].values())
        # filters combine
        pg.page.click("#f-reset")
        pg.select("#f-student", "alpha")
        pg.select("#f-status", "passed")
        assert pg.rows() == sum(e["student"] == "alpha" and e["verdict"]["status"] == "passed" for e in eps)
        assert pg.errors == []
    finally:
        pg.close()


def test_search_finds_a_known_task_by_uid_and_by_its_text(browser, replay_run):
    task = replay_run["tasks"][7]
    pg = Page(browser, _url(replay_run["dir"]))
    try:
        pg.page.fill("#f-search", task.task_uid)
        assert pg.rows() == 4  # two students x two conditions
        uids = pg.page.eval_on_selector_all("#task-rows tr.row", "els => els.map(e => e.dataset.uid)")
        assert set(uids) == {task.task_uid}
        phrase = " ".join(task.passage.split()[:8])  # from the prompt, not the response
        pg.page.fill("#f-search", phrase)
        uids = pg.page.eval_on_selector_all("#task-rows tr.row", "els => els.map(e => e.dataset.uid)")
        assert task.task_uid in uids and len(uids) < 800
        pg.page.fill("#f-search", "no such text anywhere zq")
        assert pg.rows() == 0 and pg.count() == 0
    finally:
        pg.close()


def test_deep_link_opens_that_task(browser, replay_run):
    task = replay_run["tasks"][3]
    pg = Page(browser, _url(replay_run["dir"], f"#task={task.task_uid}&student=beta"))
    try:
        detail = pg.page.locator("tr.detail-row")
        assert detail.count() == 1
        text = detail.inner_text()
        assert task.task_uid in text and task.passage.split(".")[0] in text
        assert "beta · baseline" in text and "beta · curated" in text
        rows = pg.page.eval_on_selector_all("#task-rows tr.row", "els => els.map(e => e.dataset.student)")
        assert set(rows) == {"beta"}
        # clicking another row moves the fragment, so the address can be shared
        pg.page.locator("#task-rows tr.row").nth(1).click()
        assert f"task={task.task_uid}" in pg.page.evaluate("location.hash")
        assert pg.errors == []
    finally:
        pg.close()


def test_model_output_shows_as_text_and_runs_nothing(browser, replay_run):
    victim = replay_run["victim"]
    pg = Page(browser, _url(replay_run["dir"], f"#task={victim.task_uid}&student=beta&condition=curated"))
    try:
        detail = pg.page.locator("tr.detail-row")
        assert detail.count() == 1
        assert PAYLOAD in detail.inner_text()  # shown verbatim, as text
        if pg.page.locator("button.unfold").count():
            pg.page.locator("button.unfold").first.click()
        pg.page.wait_for_timeout(300)  # an injected <img onerror> would have fired by now
        assert pg.page.evaluate("typeof window.__xss") == "undefined"
        assert pg.page.locator("#tasks img").count() == 0 and pg.page.locator("#tasks script").count() == 0
        assert pg.dialogs == [] and pg.errors == []
        pg.page.fill("#f-search", "window.__xss")  # searching the payload renders it again, still inert
        assert pg.rows() == 1
        pg.page.locator("#task-rows tr.row").first.click()
        assert pg.page.evaluate("typeof window.__xss") == "undefined" and pg.dialogs == []
    finally:
        pg.close()


@pytest.mark.skipif(not os.environ.get("SKILLBENCH_VIEW_RUN"), reason="SKILLBENCH_VIEW_RUN (a stored run) not set")
def test_stored_run_page_and_screenshot(browser):
    """The page of a real run (e.g. the main job's): clean load, summary equal to report.json, screenshot."""
    from pytest_skillbench.report.html import write_run_html

    run_dir = Path(os.environ["SKILLBENCH_VIEW_RUN"])
    if not (run_dir / "report.html").is_file():
        write_run_html(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    pg = Page(browser, _url(run_dir))
    try:
        assert pg.errors == [] and pg.dialogs == []
        assert _check_summary(pg, report) > 0
        pg.page.locator("#summary").screenshot(path=str(run_dir / "report-summary.png"))
    finally:
        pg.close()


def test_forced_answers_and_two_judges_render(browser, tmp_path, bundled_bench):
    """Episodes with a forced reading (answer forcing) and with two judges' verdicts (--judge both)."""
    from pytest_skillbench.episodes import Episode, Verdict
    from pytest_skillbench.report.html import write_run_html
    from pytest_skillbench.report.summary import build_report

    t = next(x for x in bundled_bench.split("holdout") if x.query_type == "YES_NO")
    wrong = "no" if t.answer == "yes" else "yes"
    forced = Verdict(status="passed", expected=t.answer, extracted=t.answer, rationale="forced answer (logprob)")
    llm = Verdict(status="passed", expected=t.answer, extracted=t.answer, judge="llm", rationale="sound steps")
    det = Verdict(status="failed", expected=t.answer, extracted=wrong, rationale="does not match the gold answer")
    eps = [Episode(student="s", condition="baseline", task_uid=t.task_uid, skill=t.skill, query_type=t.query_type,
                   response="I think so, but I never wrote the line.", verdict=forced),
           Episode(student="s", condition="curated", task_uid=t.task_uid, skill=t.skill, query_type=t.query_type,
                   response=f"ANSWER: {wrong}", verdict=llm,
                   extra={"verdicts": {"primary": "llm", "llm": llm.to_dict(), "deterministic": det.to_dict()}})]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps(build_report(eps, {"bench": "bundled"}, resamples=50),
                                                    default=str))
    rows = [e.to_dict() for e in eps]
    # a forced primary verdict as answer forcing stores it: verdict.scoring and verdict.extra
    rows[0]["verdict"].update(scoring="forced", extra={
        "forced": {"answer": t.answer, "margin": 1.25, "method": "logprob", "logprobs": {"yes": -0.2, "no": -1.45},
                   "status": "passed", "extracted": t.answer},
        "strict": {"status": "unscored", "reason": "no_answer_line", "rationale": "no ANSWER line"}})
    (run_dir / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_run_html(run_dir)
    pg = Page(browser, _url(run_dir, f"#task={t.task_uid}&student=s"))
    try:
        text = pg.page.locator("tr.detail-row").inner_text()
        assert "forced answer" in text and "logprob" in text and "1.25" in text
        assert "strict verdict" in text and "no_answer_line" in text
        assert "deterministic failed vs LLM passed (disagree)" in text
        assert f"{t.answer} (forced)" in pg.page.locator("#task-rows tr.row").first.inner_text()
        assert pg.errors == []
    finally:
        pg.close()
