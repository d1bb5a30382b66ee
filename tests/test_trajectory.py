"""Checkpoint trajectories (NAME@all-checkpoints), training-loss reading and loss versus quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_skillbench import cli
from pytest_skillbench.episodes import Episode, Verdict, write_episodes
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.lineage import step_of
from pytest_skillbench.report.summary import build_report
from pytest_skillbench.report.terminal import render
from pytest_skillbench.students.registry import resolve_student, resolve_students
from pytest_skillbench.studies.trajectory import loss_vs_quality, training_loss, write_plots


def make_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(str(out))
    return out


def write_state(ck: Path, losses: list[tuple[int, float]]) -> None:
    ck.joinpath("trainer_state.json").write_text(json.dumps(
        {"global_step": losses[-1][0], "log_history": [{"step": s, "loss": v, "learning_rate": 1e-4}
                                                       for s, v in losses]}))


@pytest.fixture(scope="module")
def train_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA training run: checkpoint-5, -10, -20 (trainer_state.json each) and the final adapter on top."""
    run = tmp_path_factory.mktemp("train-run")
    losses = [(5, 2.0), (10, 1.5), (20, 1.1)]
    for i, (step, _) in enumerate(losses):
        ck = make_adapter(tiny_model_dir, run / f"checkpoint-{step}", seed=10 + i)
        write_state(ck, losses[: i + 1])
    make_adapter(tiny_model_dir, run, seed=12)
    run.joinpath("training_manifest.json").write_text(json.dumps(
        {"base": str(tiny_model_dir), "steps": [{"step": s, "loss": v} for s, v in losses], "train_loss": 1.6}))
    return run


def test_all_checkpoints_expands_to_base_then_checkpoints_in_step_order(train_dir, tiny_model_dir, tmp_path):
    reg = {"v1": {"adapter": str(train_dir), "dtype": "float32", "max_new_tokens": 7}}
    specs = resolve_students("v1@all-checkpoints", reg, tmp_path)
    assert [s.name for s in specs] == ["v1@base", "v1@checkpoint-5", "v1@checkpoint-10", "v1@checkpoint-20"]
    base = specs[0]
    assert base.adapter is None and Path(base.base) == Path(tiny_model_dir)
    assert base.dtype == "float32" and base.max_new_tokens == 7  # same inference path as the checkpoints
    assert [Path(s.adapter).name for s in specs[1:]] == ["checkpoint-5", "checkpoint-10", "checkpoint-20"]
    assert resolve_student("v1@base", reg, tmp_path).name == "v1@base"
    # a bare training directory works too (its base read from the checkpoints' adapter_config.json)
    bare = resolve_students(f"{train_dir}@all-checkpoints", {}, tmp_path)
    assert [step_of(s.name)[1] for s in bare] == [0, 5, 10, 20]
    with pytest.raises(SkillbenchError, match="no checkpoint-N"):
        resolve_students(f"{tiny_model_dir}@all-checkpoints", {}, tmp_path)


def test_training_loss_from_trainer_state_and_manifest(train_dir, tmp_path):
    assert training_loss(train_dir / "checkpoint-10") == {
        "loss": 1.5, "step": 10, "source": str(train_dir / "checkpoint-10" / "trainer_state.json")}
    assert training_loss(train_dir)["loss"] == 1.1  # the last logged loss, not train_loss (the run's mean)
    only_mean = tmp_path / "m"
    only_mean.mkdir()
    only_mean.joinpath("training_manifest.json").write_text(json.dumps({"train_loss": 0.7, "global_steps": 9}))
    assert training_loss(only_mean)["loss"] == 0.7
    assert training_loss(tmp_path / "missing") is None


def _eps(student: str, rates: dict[str, float], n: int = 20, tokens: int = 50) -> list[Episode]:
    out = []
    for cond, rate in rates.items():
        for i in range(n):
            ok = i < round(rate * n)
            out.append(Episode(student=student, condition=cond, task_uid=f"{i:04x}-0000-0000-0000", skill="modus-ponens",
                               query_type="YES_NO", response=f"text {i}\nANSWER: yes", gen_tokens=tokens + i,
                               verdict=Verdict(status="passed" if ok else "failed", format_ok=True)))
    return out


def test_trajectory_marks_dip_recovery_and_best_and_plots(tmp_path):
    eps = (_eps("v1@base", {"baseline": 0.6, "curated": 0.6}, tokens=40)
           + _eps("v1@checkpoint-10", {"baseline": 0.4, "curated": 0.5}, tokens=90)
           + _eps("v1@checkpoint-20", {"baseline": 0.5, "curated": 0.55}, tokens=120)
           + _eps("v1@checkpoint-30", {"baseline": 0.7, "curated": 0.65}, tokens=60)
           + _eps("other", {"baseline": 0.5}))
    report = build_report(eps, {}, resamples=200)
    assert list(report["trajectory"]) == ["v1"]
    t = report["trajectory"]["v1"]
    assert [r["step"] for r in t["steps"]] == [0, 10, 20, 30]
    bl = t["marks"]["baseline"]
    assert bl["base"] == pytest.approx(0.6)
    assert bl["dip"]["step"] == 10 and bl["dip"]["below_base"] is True
    assert bl["recovered_above_base"] is True
    assert bl["best"]["step"] == 30 and bl["best"]["beats_base"] is True
    assert t["marks"]["curated"]["recovered_above_base"] is True
    row = t["steps"][2]
    assert row["conditions"]["baseline"]["mean_tokens"] == pytest.approx(120 + 9.5)
    assert row["delta"] == pytest.approx(0.05)
    assert row["format_compliance"] == 1.0
    assert t["length"]["peak_step"] == 20
    files = write_plots(report, tmp_path / "plots")
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(render(report))
    assert "trajectory v1: base + 3 checkpoint(s)" in text
    assert "dip step 10" in text and "recovered above base" in text and "best step 30" in text


def test_no_recovery_is_said_plainly():
    eps = (_eps("v1@base", {"baseline": 0.6}) + _eps("v1@checkpoint-1", {"baseline": 0.3})
           + _eps("v1@checkpoint-2", {"baseline": 0.5}))
    report = build_report(eps, {}, resamples=200)
    mk = report["trajectory"]["v1"]["marks"]["baseline"]
    assert mk["recovered_above_base"] is False and mk["best"]["beats_base"] is False
    assert "did NOT recover above base" in "\n".join(render(report))


def _adapter_dir(tmp: Path, name: str, loss: float) -> str:
    d = tmp / name
    d.mkdir()
    d.joinpath("training_manifest.json").write_text(json.dumps({"steps": [{"step": 1, "loss": loss + 1},
                                                                         {"step": 2, "loss": loss}]}))
    return str(d)


def test_loss_vs_quality_warns_when_lower_loss_goes_with_worse_quality(tmp_path):
    rates = {"a1": (0.30, 0.40), "a2": (0.60, 0.50), "a3": (0.90, 0.60), "a4": (1.20, 0.70)}  # loss, pass rate
    eps, students = [], {}
    for name, (loss, rate) in rates.items():
        eps += _eps(name, {"baseline": rate})
        students[name] = {"spec": {"adapter": _adapter_dir(tmp_path, name, loss), "base_student": "base"}}
    eps += _eps("base", {"baseline": 0.8})
    report = build_report(eps, {"students": students}, resamples=200)
    lq = report["loss_vs_quality"]
    assert [r["student"] for r in lq["students"]] == ["a1", "a2", "a3", "a4"]
    assert lq["spearman_pass_rate"]["rho"] == pytest.approx(1.0)
    assert lq["lowest_loss"] == "a1" and lq["best_quality"] == "a4"
    text = " ".join(lq["warnings"])
    assert "lower training loss went with WORSE judged quality" in text
    assert "lowest training loss (a1" in text
    assert "none of the 4 trained students beat its base" in text
    assert "WARNING: lower training loss" in "\n".join(render(report))

    # the healthy direction: lower loss, better quality -> no warning
    eps = []
    for name, (loss, rate) in rates.items():
        eps += _eps(name, {"baseline": 1.1 - rate})
    lq = loss_vs_quality({"students": students}, build_report(eps, {}, resamples=200)["students"])
    assert lq["spearman_pass_rate"]["rho"] == pytest.approx(-1.0)
    assert not [w for w in lq["warnings"] if "WORSE" in w]


def test_cli_trajectory_recomputes_a_stored_run(tmp_path, capsys):
    run = tmp_path / "run"
    eps = (_eps("v1@base", {"baseline": 0.6}) + _eps("v1@checkpoint-4", {"baseline": 0.4})
           + _eps("v1@checkpoint-8", {"baseline": 0.7}))
    write_episodes(run / "episodes.jsonl", eps)
    assert cli.main(["trajectory", str(run), "--plot-dir", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "trajectory v1" in out and "dip step 4" in out
    assert (tmp_path / "p" / "trajectory-v1.png").is_file()
    assert cli.main(["report", str(run)]) == 0  # the stored-run report carries the section too
    assert "trajectory v1" in capsys.readouterr().out


@pytest.mark.slow
def test_plugin_all_checkpoints_on_tiny_model(pytester, train_dir, bundled_bench, tmp_path, monkeypatch, capsys):
    tasks = bundled_bench.split("holdout")[:2]
    pytester.makefile(".toml", pyproject=f'[tool.skillbench.students.v1]\nadapter = "{train_dir}"\n')
    out = pytester.path / "r.json"
    cache = tmp_path / "cache"
    args = ["--student", "v1@all-checkpoints", "--condition", "baseline", "-k",
            f"{tasks[0].task_uid} or {tasks[1].task_uid}", "--max-new-tokens", "4", "--skillbench-cache", str(cache),
            "--skillbench-json", str(out), "-p", "no:randomly"]
    res = pytester.runpytest_subprocess(*args)
    report = json.loads(out.read_text())
    t = report["trajectory"]["v1"]
    assert [r["step"] for r in t["steps"]] == [0, 5, 10, 20]
    assert all(r["mean_tokens"] is not None for r in t["steps"])
    assert [r["train_loss"] for r in t["steps"]] == [None, 2.0, 1.5, 1.1]
    assert Path(t["plot"]).is_file() and Path(t["plot"]).name == "trajectory-v1.png"
    assert "trajectory v1: base + 3 checkpoint(s)" in res.stdout.str()
    assert len(report["loss_vs_quality"]["students"]) == 3  # the three checkpoints have a loss; the base none

    # the same through the command line: `skillbench trajectory TRAIN_DIR` + pass-through options (cached now)
    # (in-process: pytest.main inside this test, on the cached generations)
    monkeypatch.chdir(pytester.path)
    assert cli.main(["trajectory", "v1", "--plot-dir", str(pytester.path / "plots"), *args[2:10],
                     "-p", "no:randomly"]) == 0
    out = capsys.readouterr().out
    assert "trajectory v1: base + 3 checkpoint(s)" in out and "trajectory plot v1:" in out
    assert (pytester.path / "plots" / "trajectory-v1.png").is_file()
