"""Two-part (shared prefix + own positions) attention and once-reordered CPU linear layers, against the plain
computations they replace."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pytest_skillbench.students.cascade import SharedPrefix, attend
from pytest_skillbench.students.cpu_linear import packed_linears


def reference(q, k, v, mask):
    """softmax(q k^T / sqrt(d) + mask) v with key/value heads repeated for grouped-query attention."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        s = s + mask
    return torch.softmax(s, dim=-1) @ v


@pytest.mark.parametrize("queries", [1, 5])  # a decode step; a prefill call
def test_shared_prefix_attention_equals_attention_over_prefix_plus_own_keys(queries):
    torch.manual_seed(0)
    rows, heads, kv_heads, dim, own = 5, 6, 2, 16, 9
    prefixes = {0: 11, 1: 4}  # carrier -> length
    carrier_of = [0, 1, 0, -1, 1]  # row 3 reads no prefix
    store = {c: [(torch.randn(1, kv_heads, n, dim), torch.randn(1, kv_heads, n, dim))] for c, n in prefixes.items()}
    q = torch.randn(rows, heads, queries, dim)
    k, v = torch.randn(rows, kv_heads, own, dim), torch.randn(rows, kv_heads, own, dim)
    keep = torch.ones(rows, 1, queries, own, dtype=torch.bool)
    keep[1, :, :, :3] = False  # left padding
    keep[:, :, :, own - queries:] &= torch.ones(queries, queries, dtype=torch.bool).tril()  # causal own part
    mask = torch.zeros(rows, 1, queries, own).masked_fill(~keep, torch.finfo(torch.float32).min)
    groups = [(torch.tensor([r for r, c in enumerate(carrier_of) if c == g]), store[g]) for g in prefixes]
    got = SharedPrefix(groups).attend(0, q, k, v, mask, dim ** -0.5)
    for r, c in enumerate(carrier_of):
        pk, pv = store[c][0] if c >= 0 else (torch.zeros(1, kv_heads, 0, dim),) * 2
        full_k, full_v = torch.cat([pk, k[r:r + 1]], dim=2), torch.cat([pv, v[r:r + 1]], dim=2)
        full_mask = torch.cat([torch.zeros(1, 1, queries, pk.shape[2]), mask[r:r + 1]], dim=3)
        torch.testing.assert_close(got[r:r + 1], reference(q[r:r + 1], full_k, full_v, full_mask),
                                   rtol=1e-5, atol=1e-5)


def test_attend_returns_the_log_sum_exp_of_the_scores():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    out, lse = attend(q, k, v, None, 8 ** -0.5)
    s = q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) * 8 ** -0.5
    torch.testing.assert_close(lse, torch.logsumexp(s, dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, reference(q, k, v, None), rtol=1e-5, atol=1e-5)


def test_packed_linears_match_nn_linear_and_are_restored(monkeypatch):
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8, bias=False))
    x = torch.randn(5, 3, 32)
    with torch.no_grad():
        expected = model(x)
        with packed_linears(model) as n:
            if not torch.backends.mkldnn.is_available():
                pytest.skip("this torch build has no oneDNN")
            assert n == 2 and "forward" in vars(model[0])
            got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[2])
    with packed_linears(model):  # with autograd on, the layers run their own forward (gradients still flow)
        model(x).sum().backward()
    assert model[0].weight.grad is not None
    with packed_linears(model, enabled=False) as n:
        assert n == 0
    from pytest_skillbench.students import cpu_linear

    weights = sum(m.weight.numel() * 4 for m in (model[0], model[2]))
    monkeypatch.setattr(cpu_linear, "_available_bytes", lambda: 2 * weights - 8)  # copies would take > half
    with torch.no_grad(), packed_linears(model) as n:
        assert n == 0 and "forward" not in vars(model[0])
    monkeypatch.setattr(cpu_linear, "_available_bytes", lambda: 2 * weights)
    with torch.no_grad(), packed_linears(model) as n:
        assert n == 2
