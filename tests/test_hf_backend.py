"""The hf backend on tiny random models (built from a config, real tokenizer, real from_pretrained)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import build_tiny_model
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.session import SkillbenchSession
from pytest_skillbench.settings import Settings


def make_adapter(base_dir: Path, out: Path, *, trained: bool = True, seed: int = 1) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=not trained)
    peft_model = get_peft_model(model, cfg)
    if trained:  # non-zero B so the adapter really changes the logits
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    peft_model.save_pretrained(str(out))
    return out


def session_for(students: list[str], cache: Path, tmp: Path, registry: dict | None = None, **kw) -> SkillbenchSession:
    s = Settings(student=students, cache=str(cache), run_dir=str(tmp / "run"), max_new_tokens=kw.pop("mnt", 6),
                 batch_size=kw.pop("batch_size", 8), students=registry or {}, **kw)
    return SkillbenchSession(s, tmp)


def run_some(sb: SkillbenchSession, n_tasks: int = 6):
    specs = [s for s in sb.item_specs() if s.task in sb.tasks[:n_tasks]]
    sb.set_selected(specs)
    return [sb.run(s, "x") for s in specs]


class CountingForward:
    """Wraps a loaded model's forward to count calls (the real model still runs)."""

    def __init__(self, model):
        self.calls = 0
        self._orig = model.forward

        def forward(*a, **k):
            self.calls += 1
            return self._orig(*a, **k)

        model.forward = forward


def test_generation_is_cached_second_run_does_no_forward_pass(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    # generation alone (answer forcing keeps rows in the batch a few steps longer; tests/test_forcing.py)
    sb = session_for([str(tiny_model_dir)], cache, tmp_path, answer_forcing="off")
    eps = run_some(sb)
    assert len(eps) == 12 and all(e.response is not None for e in eps)
    backend = sb.backend(tiny_model_dir.name)
    assert backend.forward_batches == 2  # 12 prompts, batch size 8: batched, never one generate() per item
    sb2 = session_for([str(tiny_model_dir)], cache, tmp_path, answer_forcing="off")
    entry = sb2.pool.get(sb2.backend(tiny_model_dir.name).base_path, None,
                         sb2.backend(tiny_model_dir.name).dtype, "cpu")
    counter = CountingForward(entry["model"])
    eps2 = run_some(sb2)
    assert counter.calls == 0
    assert [e.response for e in eps2] == [e.response for e in eps]


def test_cache_key_changes_with_generation_config(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    run_some(session_for([str(tiny_model_dir)], cache, tmp_path), 2)
    sb = session_for([str(tiny_model_dir)], cache, tmp_path, mnt=7)
    run_some(sb, 2)
    assert sb.backend(tiny_model_dir.name).forward_batches == 1


@pytest.mark.slow
def test_batched_matches_one_at_a_time(tiny_model_dir, tmp_path):
    a = session_for([str(tiny_model_dir)], tmp_path / "c1", tmp_path, batch_size=8, mnt=10)
    b = session_for([str(tiny_model_dir)], tmp_path / "c2", tmp_path, batch_size=1, mnt=10)
    ra = [e.response for e in run_some(a, 8)]
    rb = [e.response for e in run_some(b, 8)]
    same = sum(x == y for x, y in zip(ra, rb))
    assert same >= 0.9 * len(ra)


@pytest.mark.slow
def test_two_adapters_share_one_base_load(tiny_model_dir, tmp_path):
    a1 = make_adapter(tiny_model_dir, tmp_path / "ad1", seed=1)
    a2 = make_adapter(tiny_model_dir, tmp_path / "ad2", seed=2)
    reg = {"v1": {"base": str(tiny_model_dir), "adapter": str(a1)},
           "v2": {"base": str(tiny_model_dir), "adapter": str(a2)}}
    sb = session_for(["v1", "v2", str(tiny_model_dir)], tmp_path / "c", tmp_path, registry=reg)
    eps = run_some(sb, 3)
    assert sb.pool.loads == 1
    by = {}
    for e in eps:
        by.setdefault(e.student, []).append(e.response)
    assert len(by) == 3
    # each adapter is applied when its own student runs (not the other's, not none): all three differ
    base = by[tiny_model_dir.name]
    assert by["v1"] != base and by["v2"] != base and by["v1"] != by["v2"]
    fps = {n: sb.backend(n).fingerprint() for n in ("v1", "v2")}
    assert fps["v1"]["adapter"] != fps["v2"]["adapter"]


def test_untrained_adapter_is_refused(tiny_model_dir, tmp_path):
    ad = make_adapter(tiny_model_dir, tmp_path / "zero", trained=False)
    sb = session_for([str(ad)], tmp_path / "c", tmp_path)
    with pytest.raises(SkillbenchError, match="does not change the model's logits"):
        run_some(sb, 1)


def test_adapter_for_another_base_is_refused(tiny_model_dir, tiny_tokenizer_dir, tmp_path):
    other = build_tiny_model(tiny_tokenizer_dir, tmp_path / "other", arch="qwen3")
    cfg = json.loads((other / "config.json").read_text())
    cfg["hidden_size"] = 32
    (other / "config.json").write_text(json.dumps(cfg))
    ad = make_adapter(tiny_model_dir, tmp_path / "ad")
    reg = {"mis": {"base": str(other), "adapter": str(ad)}}
    with pytest.raises(SkillbenchError, match="was trained on"):
        session_for(["mis"], tmp_path / "c", tmp_path, registry=reg)


@pytest.mark.slow
def test_generate_engine_fallback_gives_the_engine_s_tokens_and_survives_a_broken_engine(tiny_model_dir, tmp_path,
                                                                                           monkeypatch):
    """``engine = "generate"`` runs transformers' generate() one prompt at a time: the same responses as the
    engine, a separate cache entry (the fingerprint names it), and it still works when the engine does not."""
    from pytest_skillbench.students import engine

    reg = {"plain": {"base": str(tiny_model_dir), "engine": "generate"}}
    fast = session_for([str(tiny_model_dir)], tmp_path / "c1", tmp_path, mnt=10)
    want = [e.response for e in run_some(fast, 8)]

    def broken(*a, **k):  # what a transformers upgrade that changes the engine's internals would look like
        raise AttributeError("'DynamicCache' object has no attribute 'layers'")

    monkeypatch.setattr(engine, "greedy_generate", broken)
    plain = session_for(["plain"], tmp_path / "c2", tmp_path, registry=reg, mnt=10)
    eps = run_some(plain, 8)
    assert [e.response for e in eps] == want
    assert all(e.verdict.status != "error" for e in eps)
    assert plain.backend("plain").fingerprint()["generation"]["engine"] == "generate"
    assert fast.backend(next(iter(fast.specs))).fingerprint()["generation"]["engine"] != "generate"
    broken_engine = session_for([str(tiny_model_dir)], tmp_path / "c3", tmp_path, mnt=10)
    assert all(e.verdict.status == "error" for e in run_some(broken_engine, 2))


def test_unknown_engine_is_one_clear_error(tiny_model_dir, tmp_path):
    reg = {"x": {"base": str(tiny_model_dir), "engine": "vllm"}}
    with pytest.raises(SkillbenchError, match="engine 'vllm' is not one of engine, generate"):
        session_for(["x"], tmp_path / "c", tmp_path, registry=reg)
