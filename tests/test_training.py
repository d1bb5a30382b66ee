"""Training: template patch, verified assistant-only mask, LoRA/partial runs on a tiny model, the trained
student evaluated by the plugin, registry entries, corpus build and trace.

The tiny model (2 layers, hidden 64, the real SmolLM2 tokenizer) makes each step cost ~2 s on 2 CPU cores
(the 49k-token vocabulary dominates), so the LoRA run is one module fixture shared by several tests.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from conftest import CHATML, write_replay
from pytest_skillbench.bench import bundled_dir, load_bench
from pytest_skillbench.errors import SkillbenchError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

pytestmark = pytest.mark.filterwarnings("ignore")

DEMOS = bundled_dir("bench_tasks") / "demos.jsonl"
FIXTURES = Path(__file__).parent / "fixtures"
PYPROJECT = '[project]\nname = "demo"\n\n[tool.skillbench]\n# a comment that must survive\nmax-new-tokens = 8\n'


def test_training_installs_under_the_package_not_as_a_top_level_training(tmp_path):
    """The repository's training/ folder is importable as pytest_skillbench.training and as nothing else:
    a generic top-level ``training`` in site-packages would shadow (or be shadowed by) users' own modules."""
    import subprocess
    import sys

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "training" not in cfg["packages"] and "pytest_skillbench.training" in cfg["packages"]
    assert cfg["package-dir"]["pytest_skillbench.training"] == "training"
    code = ("import importlib.util, pytest_skillbench.training.train as t; "
            "print(importlib.util.find_spec('training') is None, t.__name__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # outside the checkout: installed names only
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "pytest_skillbench.training.train"]


def demo_lines(condition: str | None = None) -> list[str]:
    lines = [ln for ln in DEMOS.read_text().splitlines() if ln.strip()]
    if condition:
        lines = [ln for ln in lines if json.loads(ln)["metadata"]["condition"] == condition]
    return lines


@pytest.fixture(scope="module")
def short_corpus(tmp_path_factory) -> Path:
    """The three shortest baseline demo rows (real rows, so the mask check runs on real content)."""
    rows = sorted(demo_lines("baseline"), key=len)[:3]
    path = tmp_path_factory.mktemp("corpus") / "demos3.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def train_args(*argv: str) -> argparse.Namespace:
    from pytest_skillbench.training.train import build_parser

    return build_parser().parse_args(list(argv))


def run_in(directory: Path, fn, *a, **kw):
    old = os.getcwd()
    os.chdir(directory)
    try:
        return fn(*a, **kw)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, short_corpus, tmp_path_factory):
    from pytest_skillbench.training.train import run_train

    proj = tmp_path_factory.mktemp("proj")
    (proj / "pyproject.toml").write_text(PYPROJECT)
    out = proj / "runs" / "v1"
    log: list[str] = []
    manifest = run_in(proj, run_train, train_args(
        "--base", str(tiny_model_dir), "--corpus", str(short_corpus), "--out", str(out), "--name", "v1",
        "--max-steps", "6", "--save-steps", "3", "--batch-size", "1", "--grad-accum", "1", "--lr", "1e-2",
        "--scheduler", "constant", "--warmup-ratio", "0", "--lora-dropout", "0"), log=log.append)
    return {"proj": proj, "out": out, "manifest": manifest, "log": log}


# -- chat template patch -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def test_template_patch_renders_byte_identical_text(tokenizer):
    from pytest_skillbench.training.templates import has_generation_markers, patch_template

    convs = [json.loads(ln)["messages"] for ln in demo_lines()[::6]]
    convs += [[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\nA"}]]
    qwen3 = (FIXTURES / "qwen3_chat_template.jinja").read_text()
    for original, family in ((tokenizer.chat_template, "chatml"), (CHATML, "chatml"), (qwen3, "qwen3")):
        patched, fam = patch_template(tokenizer, original)
        assert fam == family and has_generation_markers(patched) and not has_generation_markers(original)
        for msgs in convs:
            for agp in (False, True):
                for kw in ({}, {"enable_thinking": False}):
                    a = tokenizer.apply_chat_template(msgs, chat_template=original, tokenize=False,
                                                      add_generation_prompt=agp, **kw)
                    b = tokenizer.apply_chat_template(msgs, chat_template=patched, tokenize=False,
                                                      add_generation_prompt=agp, **kw)
                    assert a == b
        # role header outside the markers, content + end-of-turn inside
        out = tokenizer.apply_chat_template(convs[0], chat_template=patched, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
        text = tokenizer.decode(masked)
        assert "<|im_start|>" not in text and "assistant\n" not in text[:12]
        assert text.endswith(convs[0][-1]["content"] + "<|im_end|>")
    marked = patch_template(tokenizer, patch_template(tokenizer, CHATML)[0])
    assert marked[1] == "already-marked"
    with pytest.raises(SkillbenchError, match="unsupported chat template"):
        patch_template(tokenizer, "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")


# -- verified assistant-only mask ---------------------------------------------------------------------------------
def test_mask_check_passes_on_demo_rows(tokenizer):
    from pytest_skillbench.training.corpus import load_chat_rows
    from pytest_skillbench.training.masks import verify_corpus
    from pytest_skillbench.training.templates import patch_template

    patched, _ = patch_template(tokenizer)
    rows = load_chat_rows(DEMOS)[::8]
    examples, report = verify_corpus(tokenizer, rows, patched, 2048)
    assert report.rows == len(rows) and report.truncated_rows == 0
    for row, ex in zip(rows, examples):
        kept = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != -100]
        assert kept and tokenizer.decode(kept) == row.messages[-1]["content"] + "<|im_end|>"
        assert ex.labels[:10] == [-100] * 10  # the system prompt is never in the loss


def test_mask_check_refuses_bad_rows_naming_them(tokenizer, tmp_path, tiny_model_dir):
    from pytest_skillbench.training.corpus import load_chat_rows
    from pytest_skillbench.training.masks import verify_corpus
    from pytest_skillbench.training.templates import patch_template

    patched, _ = patch_template(tokenizer)
    good = demo_lines("baseline")[0]
    empty = json.loads(good)
    empty["messages"][-1]["content"] = "  "
    empty["metadata"]["task_uid"] = "dead-beef-0000-0001"
    no_assistant = {"messages": json.loads(good)["messages"][:2], "metadata": {}}
    cases = [(empty, r"bad\.jsonl:2 \(task dead-beef-0000-0001\): no assistant content"),
             (no_assistant, r"bad\.jsonl:2: no assistant content")]
    for row, msg in cases:
        p = tmp_path / "bad.jsonl"
        p.write_text(good + "\n" + json.dumps(row) + "\n")
        with pytest.raises(SkillbenchError, match=msg):
            verify_corpus(tokenizer, load_chat_rows(p), patched, 2048)
    p.write_text(good + "\n")
    with pytest.raises(SkillbenchError, match=r"bad\.jsonl:1 .*truncation to --max-length 64 leaves no assistant"):
        verify_corpus(tokenizer, load_chat_rows(p), patched, 64)
    with pytest.raises(SkillbenchError, match="loss mask has no assistant tokens"):  # template without markers
        verify_corpus(tokenizer, load_chat_rows(p), CHATML, 2048)
    # the train command refuses before loading the model, naming the row
    p.write_text(good + "\n" + json.dumps(empty) + "\n")
    from pytest_skillbench.training.train import run_train

    with pytest.raises(SkillbenchError, match=r"bad\.jsonl:2 .*no assistant content"):
        run_in(tmp_path, run_train, train_args("--base", str(tiny_model_dir), "--corpus", str(p),
                                               "--out", str(tmp_path / "never")), log=lambda s: None)
    assert not (tmp_path / "never").exists()


# -- LoRA run -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lora_trains_and_the_loss_goes_down(lora_run):
    m = lora_run["manifest"]
    losses = [s["loss"] for s in m["steps"]]
    assert m["status"] == "finished" and m["global_steps"] == 6 and len(losses) == 6
    assert sum(losses[-3:]) / 3 < losses[0] - 0.05, losses
    out = lora_run["out"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert m["checkpoints"] == ["checkpoint-3", "checkpoint-6"]
    assert (out / "checkpoint-3" / "adapter_config.json").is_file()
    disk = json.loads((out / "training_manifest.json").read_text())
    assert disk["corpus"]["sha256"] and disk["corpus"]["rows"] == 3
    assert disk["hyperparameters"]["lora_r"] == 8 and disk["hyperparameters"]["target_modules"] == "all-linear"
    assert disk["packages"]["trl"] and disk["packages"]["peft"] and disk["chat_template_hash"]
    assert disk["loss_mask"]["verified"] and disk["loss_mask"]["loss_tokens"] > 0
    assert [s["step"] for s in disk["steps"]] == [1, 2, 3, 4, 5, 6]
    from transformers import AutoTokenizer

    from pytest_skillbench.training.templates import has_generation_markers, template_hash

    saved = AutoTokenizer.from_pretrained(str(out)).chat_template
    assert has_generation_markers(saved) and template_hash(saved) == disk["chat_template_hash"]


def test_name_appends_a_registry_entry(lora_run):
    from pytest_skillbench.settings import read_pyproject
    from pytest_skillbench.students.registry import resolve_student

    proj, out = lora_run["proj"], lora_run["out"]
    text = (proj / "pyproject.toml").read_text()
    assert text.startswith(PYPROJECT)  # appended, nothing reformatted
    entry = tomllib.loads(text)["tool"]["skillbench"]["students"]["v1"]
    assert entry == {"base": entry["base"], "adapter": "runs/v1", "base_student": entry["base"]}
    registry = read_pyproject(proj)["students"]
    spec = resolve_student("v1", registry, proj)
    assert spec.adapter == str(out.resolve())
    ck = resolve_student("v1@checkpoint-3", registry, proj)
    assert ck.adapter == str(out / "checkpoint-3") and ck.name == "v1@checkpoint-3"
    from pytest_skillbench.training.registry import check_name_free

    with pytest.raises(SkillbenchError, match="already registered"):
        check_name_free("v1", proj)


@pytest.mark.slow
def test_adapter_reloads_and_the_plugin_evaluates_it(lora_run, pytester):
    out = lora_run["out"]
    report = pytester.path / "report.json"
    res = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--student", str(out), "--student", f"{out}@checkpoint-3", "--max-new-tokens", "8",
        "-k", "modus_ponens", "--skillbench-cache", str(pytester.path / "cache"), "--skillbench-json", str(report))
    assert res.ret in (0, 1), res.stderr.str()
    data = json.loads(report.read_text())
    for name in ("v1", "v1@checkpoint-3"):
        conds = data["students"][name]["conditions"]
        assert conds["baseline"]["n"] == 5 and conds["curated"]["n"] == 5
        assert conds["baseline"]["errors"] == 0 and conds["curated"]["errors"] == 0
        path = data["run"]["students"][name]["path"]
        assert path["adapter_path"].startswith(str(out))
        # the patched training template is proven equivalent: same inference path as the base, no warning
        assert path["trained_chat_template"] == path["chat_template"]
        assert path["chat_template"] == lora_run["manifest"]["inference_chat_template_hash"]


# -- partial mode -----------------------------------------------------------------------------------------------
def test_partial_mode_trains_exactly_the_intended_parameters(tiny_model_dir, short_corpus, tmp_path):
    import torch
    from safetensors.torch import load_file

    from pytest_skillbench.training.train import run_train

    out = tmp_path / "partial"
    m = run_in(tmp_path, run_train, train_args(
        "--mode", "partial", "--top-k-layers", "1", "--base", str(tiny_model_dir), "--corpus", str(short_corpus),
        "--out", str(out), "--max-steps", "1", "--save-steps", "10", "--batch-size", "1", "--grad-accum", "1",
        "--lr", "1e-3", "--warmup-ratio", "0"), log=lambda s: None)
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    before.setdefault("lm_head.weight", before["model.embed_tokens.weight"])  # tied in the base
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    intended = {k for k in after if k.startswith("model.layers.1.")} | {"model.norm.weight", "lm_head.weight"}
    assert changed == intended
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert m["partial"]["blocks"] == [1] and m["partial"]["untied_lm_head"]
    assert m["parameters"]["trainable"] == sum(after[k].numel() for k in intended)
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False


def test_partial_setup_with_embeddings_keeps_the_tie(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from pytest_skillbench.training.train import setup_partial

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    info = setup_partial(model, 2, train_embeddings=True)
    assert not info["untied_lm_head"] and model.lm_head.weight is model.model.embed_tokens.weight
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(SkillbenchError, match="only 2 blocks"):
        setup_partial(model, 3)


# -- options ----------------------------------------------------------------------------------------------------
def test_optim_8bit_needs_cuda_unless_fallback_allowed():
    from pytest_skillbench.training.train import choose_optim, resolved_hparams

    with pytest.raises(SkillbenchError, match="needs CUDA.*--allow-optim-fallback"):
        choose_optim("adamw_8bit", False, cuda=False, bnb=True)
    name, note = choose_optim("adamw_8bit", True, cuda=False, bnb=True)
    assert name == "adamw_torch" and "used adamw" in note
    assert choose_optim("adamw_8bit", False, cuda=True, bnb=True) == ("adamw_bnb_8bit", None)
    lora = resolved_hparams(train_args("--out", "x"), "cpu")
    assert (lora["epochs"], lora["lr"], lora["scheduler"], lora["warmup_ratio"], lora["effective_batch"],
            lora["lora_r"], lora["lora_alpha"], lora["lora_dropout"]) == (3, 2e-4, "cosine", 0.03, 8, 8, 16, 0.05)
    assert (lora["batch_size"], lora["grad_accum"]) == (1, 8)
    gpu = resolved_hparams(train_args("--out", "x"), "cuda")
    assert (gpu["batch_size"], gpu["grad_accum"], gpu["effective_batch"]) == (4, 2, 8)
    assert resolved_hparams(train_args("--out", "x", "--batch-size", "2"), "cpu")["grad_accum"] == 4
    part = resolved_hparams(train_args("--out", "x", "--mode", "partial"))
    assert (part["epochs"], part["lr"], part["scheduler"], part["warmup_ratio"], part["weight_decay"]) == \
        (2, 2e-5, "linear", 0.05, 0.01)


def test_cli_registers_train_trace_and_corpus():
    from pytest_skillbench import cli
    from pytest_skillbench.cli import training as training_cli

    assert training_cli in cli.COMMAND_MODULES
    p = argparse.ArgumentParser()
    training_cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["train", "--out", "o", "--mode", "partial", "--top-k-layers", "2"])
    assert args.mode == "partial" and args.top_k_layers == 2 and args.base == "smollm2-135m"
    assert p.parse_args(["corpus", "build", "r1", "r2", "--out", "c.jsonl", "--mixed"]).runs == ["r1", "r2"]
    assert p.parse_args(["trace", "--teacher", "t"]).split == "train"


# -- corpus pipeline ----------------------------------------------------------------------------------------------
def test_trace_then_corpus_build(tmp_path):
    from pytest_skillbench.training.corpus import build_corpus, load_chat_rows
    from pytest_skillbench.training.trace import run_trace

    bench = load_bench("bundled")
    skills = ["modus-ponens", "modus-tollens"]
    tasks = [t for t in bench.split("train") if t.skill in skills]
    # seed 4: the two skills' baseline pass rates differ, so the ceiling filter below can drop one of them
    replay = write_replay(tmp_path / "teacher.jsonl", tasks, student="teacher", p_right=0.8, seed=4)
    ns = argparse.Namespace(teacher=f"replay:{replay}", condition=None, split="train", skill=skills, limit=None,
                            bench=None, catalog=None, judge=None, max_new_tokens=None, batch_size=None, device=None,
                            dtype=None, cache=str(tmp_path / "cache"), out=str(tmp_path / "trace"))
    report = run_in(tmp_path, run_trace, ns, log=lambda s: None)
    eps = [json.loads(ln) for ln in (tmp_path / "trace" / "episodes.jsonl").read_text().splitlines()]
    assert len(eps) == 2 * len(tasks) and json.loads((tmp_path / "trace" / "manifest.json").read_text())["split"] == "train"
    passed = {(e["task_uid"], e["condition"]) for e in eps if e["verdict"]["status"] == "passed"}
    assert report["students"]["teacher"]["conditions"]["curated"]["passed"] == sum(c == "curated" for _, c in passed)

    info = build_corpus([str(tmp_path / "trace")], tmp_path / "c.jsonl", min_length=10)
    rows = load_chat_rows(tmp_path / "c.jsonl")
    assert len(rows) == info["rows"] == sum(c == "curated" for _, c in passed)
    assert all("--- SKILL:" in r.messages[0]["content"] for r in rows)
    summary = json.loads(Path(info["summary"]).read_text())
    assert summary["dropped"]["other_condition"] == len(tasks) and summary["by_condition"] == {"curated": len(rows)}

    mixed = build_corpus([str(tmp_path / "trace")] * 2, tmp_path / "m.jsonl", conditions=("baseline", "curated"),
                         strip_skill_block=True, min_length=10)
    # without the SKILL block a task's baseline and curated rows with the same response are one row
    unique = {(e["task_uid"], e["response"]) for e in eps if e["verdict"]["status"] == "passed"}
    assert mixed["rows"] == len(unique) and mixed["dropped"]["duplicate"] == 2 * len(passed) - len(unique)
    assert all("--- SKILL:" not in r.messages[0]["content"] for r in load_chat_rows(tmp_path / "m.jsonl"))

    from pytest_skillbench.training.corpus import ceiling_skills

    rates = ceiling_skills(tmp_path / "trace", 0.0)  # every skill with its baseline pass rate
    assert len(set(rates.values())) == len(rates) == 2, rates  # not a tie, else the check below is vacuous
    top = max(rates, key=rates.get)
    dropped = build_corpus([str(tmp_path / "trace")], tmp_path / "d.jsonl", drop_ceiling_run=str(tmp_path / "trace"),
                           ceiling=rates[top], min_length=10)
    assert top in dropped["ceiling_skills"] and top not in dropped["by_skill"]
    assert dropped["dropped"]["ceiling_skill"] > 0
    with pytest.raises(SkillbenchError, match="no episode survived"):
        build_corpus([str(tmp_path / "trace")], tmp_path / "d.jsonl", drop_ceiling_run=str(tmp_path / "trace"),
                     ceiling=0.0, min_length=10)
    holdout_run = tmp_path / "h"
    holdout_run.mkdir()
    (holdout_run / "episodes.jsonl").write_text((tmp_path / "trace" / "episodes.jsonl").read_text())
    (holdout_run / "manifest.json").write_text(json.dumps({"split": "holdout", "bench": "bundled"}))
    with pytest.raises(SkillbenchError, match="leak"):
        build_corpus([str(holdout_run)], tmp_path / "x.jsonl")
