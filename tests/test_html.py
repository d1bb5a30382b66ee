"""The run viewer without a browser: escaping, size, sections, options and the ``view`` command; and the PNG
plots' backend hygiene. (The page's behaviour in a real browser is tests/test_html_browser.py.)"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_skillbench.cli import main
from pytest_skillbench.episodes import Episode, write_episodes
from pytest_skillbench.judges.deterministic import judge
from pytest_skillbench.report.html import HTML_NAME, script_json, write_html, write_run_html
from pytest_skillbench.report.summary import build_report

XSS = ("<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"
       "<!-- comment --> </SCRIPT> \u2028 \u2029 &amp; ")
EVIL_NAME = "<b>ev'il\"</b>"


def _episodes(tasks, students, *, seed=3, response=None, payload_uid=None) -> list[Episode]:
    rng = random.Random(seed)
    out = []
    for name in students:
        for t in tasks:
            for cond in ("baseline", "curated"):
                wrong = ("no" if t.answer == "yes" else "yes") if t.query_type == "YES_NO" else "zzz"
                text = response(t) if response else f"Thinking.\nANSWER: {t.answer if rng.random() < 0.6 else wrong}"
                if t.task_uid == payload_uid and name == students[-1]:
                    text = f"{XSS}\nANSWER: {t.answer}"
                out.append(Episode(student=name, condition=cond, task_uid=t.task_uid, skill=t.skill,
                                   query_type=t.query_type, response=text, verdict=judge(t, text)))
    return out


def _run(tmp_path: Path, eps: list[Episode], report_extra: dict | None = None) -> Path:
    run_dir = tmp_path / "run"
    run = {"bench": "bundled", "split": "holdout", "students": {n: {} for n in sorted({e.student for e in eps})}}
    report = build_report(eps, run, resamples=200)
    report.update(report_extra or {})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report, default=str), encoding="utf-8")
    write_episodes(run_dir / "episodes.jsonl", eps)
    return run_dir


@pytest.fixture(scope="module")
def tasks(bundled_bench):
    return bundled_bench.split("holdout")


def _script_blocks(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.DOTALL | re.IGNORECASE)


def test_script_json_escapes_every_breakout():
    text = script_json({"a": "</script><!--x-->&\u2028\u2029", "</script>": 1})
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == {"a": "</script><!--x-->&\u2028\u2029", "</script>": 1}


def test_untrusted_text_is_escaped_everywhere(tmp_path, tasks):
    sub = tasks[:30]
    eps = _episodes(sub, ["alpha", EVIL_NAME], payload_uid=sub[0].task_uid)
    for e in eps:  # rationales and gold reach the page too
        if e.task_uid == sub[1].task_uid:
            e.verdict.rationale = XSS
    run_dir = _run(tmp_path, eps)
    html = write_run_html(run_dir).read_text(encoding="utf-8")
    # exactly the page's own two script elements, and no comment opener anywhere
    assert len(re.findall(r"<script", html, flags=re.IGNORECASE)) == 2
    assert len(re.findall(r"</script", html, flags=re.IGNORECASE)) == 2
    assert "<!--" not in html
    assert "<img" not in html and "onerror=\"window" not in html
    assert EVIL_NAME not in html and "&lt;b&gt;ev&#39;il&#34;&lt;/b&gt;" in html  # the name, escaped, in tables
    blocks = _script_blocks(html)
    assert "\u2028" not in blocks[0] and "\u2029" not in blocks[0]
    data = json.loads(blocks[0])
    strings = data["strings"]
    assert f"{XSS}\nANSWER: {sub[0].answer}" in strings  # the data round-trips exactly
    assert XSS in strings and EVIL_NAME in strings
    # the script builds the DOM from data with textContent only
    assert "innerHTML" not in blocks[1] and "insertAdjacentHTML" not in blocks[1] and "eval(" not in blocks[1]


def test_page_reads_the_report_numbers(tmp_path, tasks):
    eps = _episodes(tasks[:40], ["alpha", "beta"])
    run_dir = _run(tmp_path, eps)
    report = json.loads((run_dir / "report.json").read_text())
    html = write_run_html(run_dir).read_text(encoding="utf-8")
    cells = re.findall(r"data-path='([^']*)' data-value='([^']*)'", html)
    assert len(cells) >= 2 * 2 * 6
    for path, value in cells:
        node = report
        for k in json.loads(path.replace("&#34;", '"')):
            node = node[k]
        assert json.loads(value.replace("&#34;", '"')) == node
    for name in ("alpha", "beta"):
        assert f"{100 * report['students'][name]['conditions']['curated']['pass_rate']:.1f}%" in html
    if "query_types" in report["students"]["alpha"]["conditions"]["baseline"]:  # bench v2's report section
        assert any('"query_types"' in p.replace("&#34;", '"') for p, _ in cells)
        assert "chance <span" in html and ">50.0%<" in html  # YES_NO: 1/2


def test_optional_sections_and_columns_follow_the_report(tmp_path, tasks):
    eps = _episodes(tasks[:20], ["alpha"])
    plain = write_run_html(_run(tmp_path / "a", eps)).read_text(encoding="utf-8")
    for sid in ("sec-trajectory", "sec-probe", "sec-pairwise", "sec-rubric", "sec-loss_vs_quality"):
        assert f'id="{sid}"' not in plain
    assert "strict pass rate" not in plain and "forced share" not in plain
    assert 'id="summary"' in plain and 'id="skills"' in plain and 'id="query-types"' in plain
    assert 'id="manifest"' in plain and 'id="tasks-section"' in plain

    run_dir = _run(tmp_path / "b", eps, {"pairwise": {"students": {"alpha": {"base": "b0", "win_rate": 0.61}}},
                                        "rubric": {"students": {"alpha": {"mean": 3.5}}}})
    report = json.loads((run_dir / "report.json").read_text())
    for cond in report["students"]["alpha"]["conditions"].values():  # answer forcing's fields (issue 16)
        cond.update({"strict": {"pass_rate": 0.25, "scored": 3}, "forced_share": 0.5, "format_gap": 0.125})
    (run_dir / "report.json").write_text(json.dumps(report))
    html = write_run_html(run_dir).read_text(encoding="utf-8")
    assert 'id="sec-pairwise"' in html and 'id="sec-rubric"' in html and "win_rate" in html
    assert "strict pass rate" in html and "forced share" in html and "format gap" in html
    assert ">25.0%<" in html and ">50.0%<" in html and ">+12.5<" in html


def test_nothing_scored_says_so(tmp_path, tasks):
    eps = _episodes(tasks[:10], ["mute"], response=lambda t: "no answer line at all")
    html = write_run_html(_run(tmp_path, eps)).read_text(encoding="utf-8")
    assert "nothing scored" in html
    assert "<rect" not in html.split("nothing scored")[0].rsplit("<svg", 1)[1]


@pytest.mark.slow
def test_size_of_the_bundled_bench_with_two_students_and_long_responses(tmp_path, tasks):
    long = "Step. " * 4000  # 24,000 characters before the answer line, per response
    eps = _episodes(tasks, ["alpha", "beta"], response=lambda t: f"{long}\nANSWER: {t.answer}")
    run_dir = _run(tmp_path, eps)
    page = write_run_html(run_dir)
    size = page.stat().st_size
    assert size <= 5 * 1024 * 1024, size
    html = page.read_text(encoding="utf-8")
    data = json.loads(_script_blocks(html)[0])
    assert data["responseCap"] is not None
    kept = [s for s in data["strings"] if s.startswith("Step.")]
    assert kept and all("characters cut here" in s and s.rsplit("\n", 1)[1].startswith("ANSWER: ") for s in kept)


def test_prompt_skill_block_is_stored_once_and_foldable(tmp_path, tasks, bundled_bench):
    sub = [t for t in tasks if t.skill == tasks[0].skill]
    html = write_run_html(_run(tmp_path, _episodes(sub, ["alpha"]))).read_text(encoding="utf-8")
    data = json.loads(_script_blocks(html)[0])
    block = bundled_bench.catalog[sub[0].skill].render()
    assert data["strings"].count(block) == 1
    assert {data["strings"][int(k)] for k in data["prompts"]} == {t.task_uid for t in sub}
    assert "SKILL block: " in _script_blocks(html)[1]


def test_view_command_and_errors(tmp_path, tasks, capsys):
    run_dir = _run(tmp_path, _episodes(tasks[:10], ["alpha"]))
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["view", str(run_dir), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["view", str(run_dir)]) == 0 and (run_dir / HTML_NAME).is_file()
    (run_dir / "report.json").unlink()
    assert main(["view", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.json" in err[0]


def test_broken_episode_line_is_one_clear_error(tmp_path, tasks, capsys):
    run_dir = _run(tmp_path, _episodes(tasks[:3], ["alpha"]))
    with open(run_dir / "episodes.jsonl", "a") as fh:
        fh.write("{not json\n")
    assert main(["view", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "episodes.jsonl:7:" in err[0] and "malformed episode" in err[0]


def test_write_html_round_trips_the_report_like_report_json(tmp_path, tasks):
    import numpy as np

    eps = _episodes(tasks[:6], ["alpha"])
    report = build_report(eps, {"bench": "bundled", "split": "holdout"}, resamples=100)
    report["students"]["alpha"]["conditions"]["baseline"]["errors"] = np.int64(0)  # report.json: default=str
    page = write_html(tmp_path / "p.html", report, [e.to_dict() for e in eps])
    as_file = json.loads(json.dumps(report, default=str))
    assert as_file["students"]["alpha"]["conditions"]["baseline"]["errors"] == "0"
    assert '"errors"]\' data-value=\'"0"\'' in page.read_text(encoding="utf-8").replace("&#34;", '"')


# -- the plugin writes the page ------------------------------------------------------------------------
def _pytest(cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
                           *args], cwd=cwd, check=False, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_session_writes_report_html_by_default_and_honours_the_option(tmp_path, replay_file):
    common = ["--student", f"replay:{replay_file}", "-k", "modus_ponens"]
    res = _pytest(tmp_path, *common, "--skillbench-run-dir", "r1")
    assert (tmp_path / "r1" / "report.html").is_file(), res.stdout[-2000:] + res.stderr[-2000:]
    assert f"run viewer: {tmp_path / 'r1' / 'report.html'}" in res.stdout
    _pytest(tmp_path, *common, "--skillbench-run-dir", "r2", "--skillbench-html", "none")
    assert (tmp_path / "r2" / "report.json").is_file() and not (tmp_path / "r2" / "report.html").exists()
    _pytest(tmp_path, *common, "--skillbench-run-dir", "r3", "--skillbench-html", "pages/x.html")
    assert (tmp_path / "pages" / "x.html").is_file() and not (tmp_path / "r3" / "report.html").exists()
    html = (tmp_path / "pages" / "x.html").read_text(encoding="utf-8")
    report = json.loads((tmp_path / "r3" / "report.json").read_text())
    assert report["run"]["command"][0] == "python -m pytest" and "--skillbench-html" in report["run"]["command"]
    assert "python -m pytest" in html  # the manifest's command is on the page
    assert f"{100 * report['students']['toy']['conditions']['baseline']['pass_rate']:.1f}%" in html


# -- PNG plots -------------------------------------------------------------------------------------------
def _report_for_plots(tasks, response=None) -> dict:
    return build_report(_episodes(tasks[:40], ["alpha", "beta"], response=response),
                        {"bench": "bundled", "students": {"alpha": {}, "beta": {}}}, resamples=100)


def test_plots_leave_the_users_backend_alone(tmp_path, tasks):
    rep = tmp_path / "r.json"
    rep.write_text(json.dumps(_report_for_plots(tasks), default=str))
    code = (
        "import json, sys, matplotlib\n"
        "matplotlib.use('pdf')\n"
        "from pytest_skillbench.plots import make_plots\n"
        f"files = make_plots(json.load(open({str(rep)!r})), {str(tmp_path / 'plots')!r})\n"
        "assert len(files) >= 4, files\n"
        "assert matplotlib.get_backend() == 'pdf', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


def test_pass_rate_plot_colours_each_condition_and_says_nothing_scored(tmp_path, tasks):
    import matplotlib
    from matplotlib.image import imread

    from pytest_skillbench.plots import COND_COLOURS, plot_pass_rates

    png = plot_pass_rates(_report_for_plots(tasks), tmp_path / "p.png")
    img = (imread(png)[:, :, :3] * 255).round()
    for cond, colour in COND_COLOURS.items():
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert (abs(img - rgb).max(axis=2) <= 2).sum() > 200, cond  # bars of that colour are drawn
    assert COND_COLOURS["baseline"] != COND_COLOURS["curated"]
    empty = _report_for_plots(tasks, response=lambda t: "no answer")
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        svg = plot_pass_rates(empty, tmp_path / "empty.svg").read_text()
    assert "nothing scored" in svg


def test_prompts_of_a_run_on_the_previous_bundled_bench(tmp_path):
    """A run recorded as ``bundled`` before v2 replaced it: its prompts come from the bundled bench whose
    content hash is the run's (``bundled-v1``), not from today's files."""
    from pytest_skillbench.bench import load_bench

    v1 = load_bench("bundled-v1")
    old = v1.split("holdout")[:4]
    run_dir = _run(tmp_path, _episodes(old, ["alpha"]))
    report = json.loads((run_dir / "report.json").read_text())
    report["run"]["bench_hash"] = v1.content_hash("holdout")
    (run_dir / "report.json").write_text(json.dumps(report))
    html = write_run_html(run_dir).read_text(encoding="utf-8")
    data = json.loads(_script_blocks(html)[0])
    assert {data["strings"][int(k)] for k in data["prompts"]} == {t.task_uid for t in old}
    assert "prompts are not shown" not in html and "changed since this run" not in html
