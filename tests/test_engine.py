"""The greedy engine (shared-prefix prefill, continuous batching) against transformers' own ``generate()``
run one prompt at a time, on a tiny random model loaded through ``from_pretrained``."""

from __future__ import annotations

import pytest

from pytest_skillbench.prompts import messages
from pytest_skillbench.students import engine
from pytest_skillbench.students.engine import (
    MIN_SHARED,
    PAD_WASTE,
    SLACK,
    _chunks,
    carrier_tree,
    greedy_generate,
    prefix_plan,
)


@pytest.fixture(scope="module")
def bench_prompts(loaded, bundled_bench):
    tok, _ = loaded
    tasks = bundled_bench.split("holdout")[:7]  # two skills: curated prompts share a SKILL block
    texts = [tok.apply_chat_template(messages(t, c, bundled_bench.catalog), add_generation_prompt=True,
                                     tokenize=False) for t in tasks for c in ("baseline", "curated")]
    return tok(texts, add_special_tokens=False)["input_ids"]


def one_at_a_time(model, prompts, *, max_new_tokens, eos, penalty):
    import torch

    outs = []
    for p in prompts:
        ids = torch.tensor([p])
        with torch.no_grad():
            o = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                               max_new_tokens=max_new_tokens, repetition_penalty=penalty, eos_token_id=eos,
                               pad_token_id=eos[0], temperature=None, top_p=None, top_k=None)
        new = o[0, len(p):].tolist()
        stop = [k for k, t in enumerate(new) if t in eos]
        outs.append(new[:stop[0]] if stop else new)
    return outs


def test_prefix_plan_shares_prefixes_and_never_a_whole_prompt():
    shared = list(range(100, 140))
    prompts = [shared + [1, 2, 3], shared + [1, 2, 4], shared + [9], shared[:20] + [7, 7], [5] * 30, shared + [1, 2, 3]]
    order, plen, carriers, carrier_of = prefix_plan(prompts)
    assert sorted(order) == list(range(len(prompts)))
    # 0, 1 and 5 share 42 tokens, 2 shares 40 with them: within SLACK, so one carrier (their common prefix)
    assert SLACK >= 2 and {plen[i] for i in (0, 1, 2, 5)} == {len(shared)}
    assert len({carrier_of[i] for i in (0, 1, 2, 5)}) == 1
    # 3 shares only 20 tokens: its own carrier, not a cut of the others' (which would cost them 20 tokens each)
    assert plen[3] == 20 and carrier_of[3] != carrier_of[0]
    assert plen[4] == 0 and carrier_of[4] == -1  # no neighbour shares 16+ tokens with [5]*30
    assert all(p < len(q) for p, q in zip(plen, prompts))
    for i, c in enumerate(carrier_of):  # a prompt reads its carrier whole
        if c >= 0:
            assert carriers[c] == tuple(prompts[i][:plen[i]])
    assert MIN_SHARED <= 20


def test_carrier_tree_computes_each_shared_position_once():
    solver = list(range(1000, 1120))
    carriers = [tuple(solver + [1] * 5), tuple(solver + [2] * 300), tuple(solver + [3] * 250), tuple([9] * 40)]
    allc, plen, parent = carrier_tree(carriers)
    assert allc[:4] == carriers and len(allc) == 5 and allc[4] == tuple(solver)
    assert parent[:4] == [4, 4, 4, -1] and plen[:4] == [120, 120, 120, 0]
    assert parent[4] == -1 and plen[4] == 0
    for c, (p, par) in enumerate(zip(plen, parent)):
        if par >= 0:
            assert allc[c][:p] == allc[par][:p] and p < len(allc[c])
    computed = sum(len(c) - p for c, p in zip(allc, plen))
    assert computed == sum(map(len, carriers)) - 2 * len(solver)


def test_prefill_calls_group_similar_lengths():
    lengths = [170, 131, 168, 140, 203, 132, 175, 150]
    chunks = _chunks(lengths)
    assert sorted(i for ch in chunks for i in ch) == list(range(len(lengths)))
    for ch in chunks:
        real = sum(lengths[i] for i in ch)
        assert max(lengths[i] for i in ch) * len(ch) <= (1 + PAD_WASTE) * real
    assert len(chunks) < len(lengths)  # not one call per row either


@pytest.mark.parametrize("batch_size,penalty", [(1, 1.3), (3, 1.3), (16, 1.3), (4, 0.2)])
@pytest.mark.slow
def test_matches_one_prompt_at_a_time_generate(loaded, bench_prompts, batch_size, penalty):
    """Same tokens as generate() per prompt, with rows stopping at different steps (end tokens chosen from
    the model's own outputs), a repetition penalty (0.2 rewards repeats, so prompt tokens must count as seen),
    and fewer slots than prompts (admission + compaction)."""
    tok, model = loaded
    free = one_at_a_time(model, bench_prompts, max_new_tokens=10, eos=[tok.eos_token_id], penalty=penalty)
    assert len({tuple(f) for f in free}) == len(free)
    # end tokens taken from the outputs at different steps, so rows stop at different times
    eos = sorted({f[i % 9 + 1] for i, f in enumerate(free) if i % 3})
    expected = one_at_a_time(model, bench_prompts, max_new_tokens=10, eos=eos, penalty=penalty)
    assert len({len(e) for e in expected}) >= 4
    got, stats = greedy_generate(model, bench_prompts, max_new_tokens=10, eos_ids=set(eos), pad_id=tok.pad_token_id,
                                 device="cpu", batch_size=batch_size, repetition_penalty=penalty)
    assert got == expected
    assert stats.generated_tokens == sum(map(len, expected))
    if batch_size == 16:  # one batch: every shared prefix prefilled once
        assert stats.prefill_positions < 0.7 * stats.prompt_tokens


@pytest.fixture(scope="module")
def loaded_qwen3(tiny_tokenizer_dir, tmp_path_factory):
    """A tiny random Qwen3 (2 layers, hidden 64; q/k norms, explicit head_dim): one of the other families the
    engine runs through cascade attention, saved and reloaded through ``from_pretrained``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                      tie_word_embeddings=False, initializer_range=0.2, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    out = tmp_path_factory.mktemp("varied-qwen3")
    Qwen3ForCausalLM(cfg).save_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert model.config.model_type == "qwen3"
    return tok, model


@pytest.mark.parametrize("batch_size,penalty", [(1, 1.3), (16, 1.3), (4, 0.2)])
@pytest.mark.slow
def test_qwen3_matches_one_prompt_at_a_time_generate(loaded_qwen3, bench_prompts, batch_size, penalty):
    """The same exactness on Qwen3, whose attention (q/k norms, head_dim != hidden/heads) differs from Llama's."""
    from pytest_skillbench.students.cascade import SUPPORTED_MODEL_TYPES

    tok, model = loaded_qwen3
    assert "qwen3" in SUPPORTED_MODEL_TYPES  # the cascade path is the one under test
    free = one_at_a_time(model, bench_prompts, max_new_tokens=10, eos=[tok.eos_token_id], penalty=penalty)
    eos = sorted({f[i % 9 + 1] for i, f in enumerate(free) if i % 3})
    expected = one_at_a_time(model, bench_prompts, max_new_tokens=10, eos=eos, penalty=penalty)
    assert len({len(e) for e in expected}) >= 3
    got, stats = greedy_generate(model, bench_prompts, max_new_tokens=10, eos_ids=set(eos), pad_id=tok.pad_token_id,
                                 device="cpu", batch_size=batch_size, repetition_penalty=penalty)
    assert got == expected
    if batch_size == 16:
        assert stats.prefill_positions < 0.7 * stats.prompt_tokens


def test_rows_finish_in_callbacks_and_respect_max_new_tokens(loaded, bench_prompts):
    tok, model = loaded
    seen = {}
    got, stats = greedy_generate(model, bench_prompts, max_new_tokens=4, eos_ids={tok.eos_token_id},
                                 pad_id=tok.pad_token_id, device="cpu", batch_size=5, repetition_penalty=1.0,
                                 on_row_done=lambda i, ids: seen.setdefault(i, list(ids)))
    assert sorted(seen) == list(range(len(bench_prompts)))
    assert all(seen[i] == got[i] and len(got[i]) <= 4 for i in seen)
    assert stats.admissions >= 3  # 14 prompts through 5 slots
    nothing, _ = greedy_generate(model, bench_prompts[:2], max_new_tokens=0, eos_ids={1}, pad_id=0, device="cpu",
                                 batch_size=2)
    assert nothing == [[], []]


@pytest.mark.slow
def test_long_answers_grow_the_cache_past_its_spare_room(loaded, bench_prompts, monkeypatch):
    """More decode steps than the room preallocated per batch (SPARE_CAP, cut to 20 here): the buffer grows
    and the tokens still equal generate()'s."""
    tok, model = loaded
    monkeypatch.setattr(engine, "SPARE_CAP", 20)
    layer, grown = engine._grow_layer_class(), []
    update = layer.update

    def counting_update(self, k, v, *a, **kw):
        before = self.kbuf.shape[2]
        out = update(self, k, v, *a, **kw)
        grown.extend([1] if self.kbuf.shape[2] > before else [])
        return out

    monkeypatch.setattr(layer, "update", counting_update)
    prompts = bench_prompts[:3]
    expected = one_at_a_time(model, prompts, max_new_tokens=80, eos=[tok.eos_token_id], penalty=1.0)
    assert max(map(len, expected)) > 60
    got, _ = greedy_generate(model, prompts, max_new_tokens=80, eos_ids={tok.eos_token_id},
                             pad_id=tok.pad_token_id, device="cpu", batch_size=2)
    assert got == expected
    assert grown  # the buffer did grow


def test_packed_linears_and_unshared_prefill_give_the_same_tokens(loaded, bench_prompts):
    """The engine's two speed paths switched off one at a time (plain nn.Linear; no shared prefixes, as for a
    model cascade attention does not support) decode the same tokens."""
    tok, model = loaded
    kw = dict(max_new_tokens=8, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id, device="cpu", batch_size=4,
              repetition_penalty=1.3)
    fast, stats = greedy_generate(model, bench_prompts, **kw)
    assert stats.extra["packed_linear_layers"] > 0 and stats.extra["shared_prefixes"] is True
    plain, stats = greedy_generate(model, bench_prompts, packed_linear=False, **kw)
    assert stats.extra["packed_linear_layers"] == 0 and plain == fast
    model.config.model_type, kept = "not-supported", model.config.model_type
    try:
        unshared, stats = greedy_generate(model, bench_prompts, **kw)
    finally:
        model.config.model_type = kept
    assert stats.extra["shared_prefixes"] is False and unshared == fast
    assert stats.prefill_positions >= stats.prompt_tokens  # every prompt prefilled whole
    assert model.config._attn_implementation == "sdpa"  # restored after the run


def test_prompts_sharing_nothing_still_see_only_their_own_padding(loaded):
    """No carrier at all (prompts share no prefix), rows of different lengths in one batch: the rows' own
    masks alone must hide the padding."""
    import random

    tok, model = loaded
    rng = random.Random(3)
    prompts = [[rng.randrange(100, len(tok) - 1) for _ in range(n)] for n in (5, 23, 11, 40, 17)]
    expected = one_at_a_time(model, prompts, max_new_tokens=6, eos=[tok.eos_token_id], penalty=1.3)
    got, stats = greedy_generate(model, prompts, max_new_tokens=6, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id,
                                 device="cpu", batch_size=5, repetition_penalty=1.3)
    assert stats.extra["shared_prefixes"] is True and got == expected


def test_on_step_reports_tokens_before_rows_finish(loaded, bench_prompts):
    """Live progress: the running token count grows every step, before the first row is done."""
    tok, model = loaded
    steps, first_done = [], []
    got, stats = greedy_generate(model, bench_prompts, max_new_tokens=6, eos_ids={tok.eos_token_id},
                                 pad_id=tok.pad_token_id, device="cpu", batch_size=16,
                                 on_step=steps.append, on_row_done=lambda i, ids: first_done or first_done.append(
                                     len(steps)))
    assert steps == sorted(steps) and steps[-1] == stats.generated_tokens == sum(map(len, got))
    assert first_done and first_done[0] >= 1 and steps[first_done[0] - 1] > 0
