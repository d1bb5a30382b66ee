"""Attention over a shared prefix read once per group of rows (cascade attention).

Bench prompts share long prefixes: the solver prompt, and in the curated condition the skill's SKILL block
(~600 of a ~770-token prompt). The engine keeps one copy of a shared prefix's keys/values (a "carrier") and
gives each batch row only its own positions (its prompt's suffix and its generated tokens). Attention is then
computed in two parts and merged exactly:

* the row's own part: its queries against its own keys, under the row's mask (padding, causality);
* the prefix part: the queries of every row that shares a carrier, packed into one call against the carrier's
  keys (no mask: every prefix position precedes every query), so the prefix is read once per group rather than
  once per row, and no KV copy of it is made per row.

Each part returns its output and the log-sum-exp of its scores; ``softmax`` over the union of keys is the
two outputs weighted by ``sigmoid(lse_own - lse_prefix)``. Results equal a single softmax up to float rounding.

:func:`cascade_attention` is registered with transformers' ``AttentionInterface``; :func:`activated` switches a
model to it for the duration of a ``with`` block. A forward call without a ``shared_prefix`` keyword falls back
to transformers' own SDPA attention, so nothing else changes for the model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

NAME = "skillbench_cascade"
# decoder families whose attention calls the attention interface with plain full attention: no sliding
# window, logit soft-capping, attention sinks or position bias the two-part merge would have to reproduce
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "olmo2", "granite"})


def attend(q, k, v, mask, scale: float):
    """Attention output and per-query log-sum-exp of the scores. q (b, h, n, d); k, v (b, kvh, m, d) with h a
    multiple of kvh (grouped-query); mask additive (b or 1, 1, n, m) or None."""
    import torch

    if q.device.type == "cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, attn_mask=mask, scale=scale)
    h, kvh = q.shape[1], k.shape[1]
    if h != kvh:
        k, v = k.repeat_interleave(h // kvh, dim=1), v.repeat_interleave(h // kvh, dim=1)
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if mask is not None:
        s = s + mask.float()
    lse = torch.logsumexp(s, dim=-1)
    return torch.matmul(torch.exp(s - lse[..., None]).to(v.dtype), v), lse


@dataclass
class Stacked:
    """Several small groups in one attention call: their carriers stacked along the batch (shorter ones padded
    and masked), each group's query rows padded to the largest group's count (a padded slot repeats a row and
    its result is dropped)."""

    index: object  # (groups * slots,) row of each slot
    real: object  # positions in ``index`` of real (not padding) slots
    slots: int
    kv: list  # per layer (k, v) of shape (groups, kv heads, longest carrier, head dim)
    mask: object  # (groups, 1, 1, longest carrier) additive

    @classmethod
    def build(cls, rows: list[list[int]], carriers: list[list[tuple]], neg: float, device) -> Stacked:
        import torch

        slots = max(map(len, rows))
        longest = max(c[0][0].shape[2] for c in carriers)
        index = torch.tensor([rs[j] if j < len(rs) else rs[0] for rs in rows for j in range(slots)], device=device)
        real = torch.tensor([g * slots + j for g, rs in enumerate(rows) for j in range(len(rs))], device=device)
        mask = torch.zeros(len(rows), 1, 1, longest, dtype=carriers[0][0][0].dtype, device=device)
        kv = []
        for layer in range(len(carriers[0])):
            k0 = carriers[0][layer][0]
            ks = k0.new_zeros(len(rows), k0.shape[1], longest, k0.shape[3])
            vs = torch.zeros_like(ks)
            for g, c in enumerate(carriers):
                n = c[layer][0].shape[2]
                ks[g, :, :n], vs[g, :, :n] = c[layer][0][0], c[layer][1][0]
            kv.append((ks, vs))
        for g, c in enumerate(carriers):
            mask[g, ..., c[0][0].shape[2]:] = neg
        return cls(index, real, slots, kv, mask)

    def attend(self, layer: int, q, scale: float):
        """(rows, output, lse) of the real slots."""
        _, h, n, d = q.shape
        kp, vp = self.kv[layer]
        groups, kvh = kp.shape[0], kp.shape[1]
        g = h // kvh
        qs = q.index_select(0, self.index).view(groups, self.slots, kvh, g, n, d).permute(0, 2, 1, 3, 4, 5)
        o, s = attend(qs.reshape(groups, kvh, self.slots * g * n, d), kp, vp, self.mask, scale)
        o = o.view(groups, kvh, self.slots, g, n, d).permute(0, 2, 1, 3, 4, 5).reshape(groups * self.slots, h, n, d)
        s = s.view(groups, kvh, self.slots, g, n).permute(0, 2, 1, 3, 4).reshape(groups * self.slots, h, n)
        return self.index.index_select(0, self.real), o.index_select(0, self.real), s.index_select(0, self.real)


@dataclass
class SharedPrefix:
    """Which rows of a forward call read which carrier: ``groups`` is a list of (row indices, per-layer (k, v)
    of shape (1, kv heads, prefix length, head dim)) and of :class:`Stacked` groups."""

    groups: list

    def attend(self, layer: int, q, k, v, mask, scale: float):
        import torch

        out, lse = attend(q, k, v, mask, scale)  # the rows' own positions
        if not self.groups:
            return out
        _, h, n, d = q.shape
        kvh = k.shape[1]
        g = h // kvh
        pre_out = torch.zeros_like(out)
        pre_lse = torch.full_like(lse, float("-inf"))
        for group in self.groups:
            if isinstance(group, Stacked):
                rows, o, s = group.attend(layer, q, scale)
                pre_out.index_copy_(0, rows, o)
                pre_lse.index_copy_(0, rows, s.to(lse.dtype))
                continue
            rows, kv = group
            kp, vp = kv[layer]
            r = rows.numel()
            # every row's query heads of one kv head side by side: one call reads the prefix once for the group
            qg = q.index_select(0, rows).view(r, kvh, g, n, d).transpose(0, 1).reshape(1, kvh, r * g * n, d)
            o, s = attend(qg, kp, vp, None, scale)
            pre_out.index_copy_(0, rows, o.view(kvh, r, g, n, d).transpose(0, 1).reshape(r, h, n, d))
            pre_lse.index_copy_(0, rows, s.view(kvh, r, g, n).transpose(0, 1).reshape(r, h, n).to(lse.dtype))
        own_share = torch.sigmoid(lse - pre_lse).unsqueeze(-1).to(out.dtype)
        return torch.lerp(pre_out, out, own_share)


def cascade_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      shared_prefix: SharedPrefix | None = None, **kwargs):
    """transformers attention-interface function: two-part attention when a ``shared_prefix`` is given,
    transformers' SDPA attention otherwise."""
    if shared_prefix is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = shared_prefix.attend(module.layer_idx, query, key, value, attention_mask, scale)
    return out.transpose(1, 2).contiguous(), None


def text_config(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def supported(model) -> bool:
    """Whether the model's attention is plain full attention this module reproduces exactly."""
    cfg = text_config(model)
    if getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager", NAME, None):
        return False
    if getattr(cfg, "use_sliding_window", False) or getattr(cfg, "attn_logit_softcapping", None):
        return False
    if cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None):
        return False
    return all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or []))


@contextlib.contextmanager
def activated(model):
    """Route the model's attention through :func:`cascade_attention` inside the block (restored after)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, cascade_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # a 2-D padding mask still becomes SDPA's 4-D mask
    cfg = text_config(model)
    previous = cfg._attn_implementation
    cfg._attn_implementation = NAME
    try:
        yield
    finally:
        cfg._attn_implementation = previous
