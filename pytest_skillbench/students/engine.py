"""Greedy decoding for the hf backend: shared-prefix prefill and ragged batches.

Why not ``model.generate`` on padded batches: bench prompts share long prefixes (the solver prompt; in the
curated condition also the skill's SKILL block, ~600 of a ~770-token prompt) and small students answer in a
few dozen tokens, so a static padded batch spends most of its time re-reading identical prefixes and decoding
rows that have already stopped. This loop:

1. sorts prompts by their token ids, so prompts that share a prefix land in one batch;
2. prefills each distinct shared prefix of a batch once (a shorter shared prefix reuses the first positions of
   a longer one) and copies its KV-cache rows to every prompt that shares it;
3. prefills every prompt's own suffix in one call; a row's layout is ``[pad][shared prefix][pad][suffix]`` and
   an attention mask plus explicit position ids make each row see exactly its own prompt at exactly the
   positions it would have alone;
4. decodes one token per active row per step, applying the repetition penalty as transformers'
   ``RepetitionPenaltyLogitsProcessor`` does (over the row's prompt and generated tokens, never over padding),
   and drops rows that emitted an end token from the batch and its KV cache.

Greedy output equals one-prompt-at-a-time ``generate()`` up to float rounding in the attention kernels
(``benchmarks/generation_throughput.py`` reports the share of identical texts). Nothing here assumes a CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

ENGINE_VERSION = "continuous-prefix-v1"  # recorded in the generation config: part of the cache key
MIN_SHARED = 16  # shared prefixes shorter than this are prefilled with the row's suffix
COMPACT_SHARE = 0.25  # drop finished rows once they are this share of the batch (a KV copy is not free)


@dataclass
class DecodeStats:
    admissions: int = 0
    forward_calls: int = 0
    prompt_tokens: int = 0  # sum of prompt lengths
    prefill_positions: int = 0  # token positions actually computed in prefill, padding included
    decode_row_steps: int = 0  # (row, step) pairs computed while decoding, finished-but-not-dropped rows included
    generated_tokens: int = 0
    compactions: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_plan(prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[int], list[tuple[int, ...]], list[int]]:
    """Admission order, each prompt's shared-prefix length, the carrier prefixes, and each prompt's carrier.

    Prompts are ordered by their token ids, so prompts sharing a prefix sit together. A prompt's shared prefix
    is its longest common prefix with a neighbour in that order (never its whole prompt; none if shorter than
    ``MIN_SHARED``). A carrier is a prefix that is prefilled once; a shorter prefix that starts a longer carrier
    reads the carrier's first positions instead of getting its own.
    """
    n = len(prompts)
    order = sorted(range(n), key=lambda i: (list(prompts[i]), i))
    best = [0] * n
    for a, b in zip(order, order[1:]):
        k = _lcp(prompts[a], prompts[b])
        best[a], best[b] = max(best[a], k), max(best[b], k)
    plen = [min(b, len(p) - 1) if b >= MIN_SHARED else 0 for b, p in zip(best, prompts)]
    carriers: list[tuple[int, ...]] = []
    carrier_of = [-1] * n
    for i in sorted(range(n), key=lambda i: -plen[i]):
        p = plen[i]
        if p == 0:
            continue
        head = tuple(prompts[i][:p])
        for c, car in enumerate(carriers):
            if len(car) >= p and car[:p] == head:
                carrier_of[i] = c
                break
        else:
            carriers.append(head)
            carrier_of[i] = len(carriers) - 1
    return order, plen, carriers, carrier_of


def _left_pad_kv(t, length: int):
    """Left-pad a (batch, heads, seq, dim) tensor with zeros along seq to ``length``."""
    import torch.nn.functional as F

    return t if t.shape[2] == length else F.pad(t, (0, 0, length - t.shape[2], 0))


@functools.lru_cache(maxsize=None)
def _grow_layer_class():
    """A KV-cache layer whose keys/values live in a buffer with spare room along the sequence: appending a
    decode step writes in place, where transformers' ``DynamicLayer`` copies the whole cache with ``torch.cat``
    (at 16 rows x 900 positions that copy was a third of a decode step on a 2-core CPU)."""
    import torch.nn.functional as F
    from transformers.cache_utils import DynamicLayer

    class GrowLayer(DynamicLayer):
        def __init__(self, k, v, spare: int):
            super().__init__()
            self.device, self.is_initialized, self.spare, self.n = k.device, True, max(1, spare), 0
            self.kbuf = k.new_empty(*k.shape[:2], k.shape[2] + self.spare, k.shape[3])
            self.vbuf = v.new_empty(*v.shape[:2], v.shape[2] + self.spare, v.shape[3])
            self.update(k, v)

        def update(self, key_states, value_states, *args, **kwargs):
            m = key_states.shape[2]
            if self.n + m > self.kbuf.shape[2]:
                grow = max(m, self.spare)
                self.kbuf = F.pad(self.kbuf[:, :, :self.n], (0, 0, 0, grow))
                self.vbuf = F.pad(self.vbuf[:, :, :self.n], (0, 0, 0, grow))
            self.kbuf[:, :, self.n:self.n + m] = key_states
            self.vbuf[:, :, self.n:self.n + m] = value_states
            self.n += m
            self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]
            return self.keys, self.values

    return GrowLayer


def _cache_from(kv: list[tuple], spare: int):
    """A transformers ``DynamicCache`` holding the given per-layer (keys, values), with room to grow."""
    from transformers import DynamicCache

    cache = DynamicCache()
    layer = _grow_layer_class()
    cache.layers = [layer(k, v, spare) for k, v in kv]
    return cache


def _cache_kv(cache) -> list[tuple]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache_kwarg(model) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; use whichever this version's forward takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class _Decoder:
    """Continuous greedy batching: admit prompts while there is room, decode one token per live row per step,
    retire rows at an end token, refill their slots from the queue."""

    def __init__(self, model, prompts, *, max_new_tokens, eos_ids, pad_id, device, batch_size, repetition_penalty,
                 on_row_done, on_admit):
        import torch

        self.torch = torch
        self.model, self.prompts, self.device = model, [list(p) for p in prompts], device
        self.max_new_tokens, self.pad_id, self.batch_size = max_new_tokens, pad_id, max(1, batch_size)
        self.penalty = float(repetition_penalty)
        self.eos = torch.tensor(sorted(eos_ids), device=device, dtype=torch.long)
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self.on_row_done, self.on_admit = on_row_done, on_admit
        self.stats = DecodeStats()
        self.order, self.plen, self.carriers, self.carrier_of = prefix_plan(self.prompts)
        self.uses = [0] * len(self.carriers)
        for c in self.carrier_of:
            if c >= 0:
                self.uses[c] += 1
        self.store: dict[int, list[tuple]] = {}  # carrier -> per-layer (k, v), shape (1, heads, len, dim)
        self.out: list[list[int] | None] = [None] * len(self.prompts)
        # the running batch
        self.rows: list[int] = []  # prompt index of each live row
        self.gen: list[list[int]] = []
        self.done: list[bool] = []
        self.cache = None  # a DynamicCache of growing layers (_grow_layer_class)
        self.cache_kw = _cache_kwarg(model)
        self.spare = min(max_new_tokens, 128) + 1
        self.mask = self.last_pos = self.logits = self.seen = None

    def forward(self, ids, mask, pos, cache):
        """One forward pass; returns last-position logits and the (grown) cache."""
        self.stats.forward_calls += 1
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos.clamp(min=0), use_cache=True,
                         logits_to_keep=1, **{self.cache_kw: cache})
        cache = getattr(out, "cache", None) or out.past_key_values
        return out.logits[:, -1, :], cache

    # -- admission -------------------------------------------------------------------------------
    def _prefill_carriers(self, needed: list[int]) -> None:
        torch = self.torch
        todo = [c for c in needed if c not in self.store]
        if not todo:
            return
        lp = max(len(self.carriers[c]) for c in todo)
        ids = torch.full((len(todo), lp), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros(len(todo), lp, dtype=torch.long, device=self.device)
        for j, c in enumerate(todo):
            car = self.carriers[c]
            ids[j, lp - len(car):] = torch.tensor(car, device=self.device)
            mask[j, lp - len(car):] = 1
        _, cache = self.forward(ids, mask, mask.cumsum(1) - 1, None)
        kv = _cache_kv(cache)
        self.stats.prefill_positions += ids.numel()
        for j, c in enumerate(todo):
            n = len(self.carriers[c])
            self.store[c] = [(k[j:j + 1, :, lp - n:], v[j:j + 1, :, lp - n:]) for k, v in kv]

    def _prefill_rows(self, new: list[int]):
        """Prefill the given prompts (shared prefixes from the store); returns their batch state."""
        torch = self.torch
        n = len(new)
        self._prefill_carriers(sorted({self.carrier_of[i] for i in new if self.carrier_of[i] >= 0}))
        lp = max(self.plen[i] for i in new)
        kv = None
        pre_mask = torch.zeros(n, lp, dtype=torch.long, device=self.device)
        if lp:
            layers = []
            for layer in range(len(next(iter(self.store.values())))):
                ks, vs = [], []
                for i in new:
                    p, c = self.plen[i], self.carrier_of[i]
                    if c < 0:
                        k0, v0 = self.store[next(iter(self.store))][layer]
                        k, v = k0[:, :, :0], v0[:, :, :0]
                    else:
                        k, v = self.store[c][layer]
                        k, v = k[:, :, :p], v[:, :, :p]
                    ks.append(_left_pad_kv(k, lp))
                    vs.append(_left_pad_kv(v, lp))
                layers.append((torch.cat(ks), torch.cat(vs)))
            kv = layers
            for r, i in enumerate(new):
                if self.plen[i]:
                    pre_mask[r, lp - self.plen[i]:] = 1
        for i in new:
            c = self.carrier_of[i]
            if c >= 0:
                self.uses[c] -= 1
                if self.uses[c] == 0:
                    self.store.pop(c, None)
        suffixes = [self.prompts[i][self.plen[i]:] for i in new]
        ls = max(map(len, suffixes))
        ids = torch.full((n, ls), self.pad_id, dtype=torch.long, device=self.device)
        smask = torch.zeros(n, ls, dtype=torch.long, device=self.device)
        for r, suf in enumerate(suffixes):
            ids[r, ls - len(suf):] = torch.tensor(suf, device=self.device)
            smask[r, ls - len(suf):] = 1
        pos = torch.tensor([self.plen[i] for i in new], device=self.device)[:, None] + smask.cumsum(1) - 1
        mask = torch.cat([pre_mask, smask], dim=1)
        logits, cache = self.forward(ids, mask, pos, _cache_from(kv, ls + self.spare) if kv else None)
        kv = _cache_kv(cache)
        self.stats.prefill_positions += ids.numel()
        self.stats.prompt_tokens += sum(len(self.prompts[i]) for i in new)
        seen = None
        if self.penalty != 1.0:
            seen = torch.zeros(n, self.vocab, dtype=torch.bool, device=self.device)
            for r, i in enumerate(new):
                seen[r, torch.tensor(self.prompts[i], device=self.device)] = True
        return kv, mask, pos[:, -1], logits, seen

    def _rebuild(self, queue: list[int]) -> None:
        """Drop finished rows, admit queued prompts into the free slots, trim all-padding columns."""
        torch = self.torch
        keep = [r for r, d in enumerate(self.done) if not d]
        free = self.batch_size - len(keep)
        new = [queue.pop(0) for _ in range(min(free, len(queue)))]
        parts = []
        if keep and self.cache is not None:
            idx = torch.tensor(keep, device=self.device)
            parts.append(([(k[idx], v[idx]) for k, v in _cache_kv(self.cache)], self.mask[idx], self.last_pos[idx],
                          self.logits[idx], self.seen[idx] if self.seen is not None else None))
            if len(keep) < len(self.rows):
                self.stats.compactions += 1
        if new:
            self.stats.admissions += 1
            parts.append(self._prefill_rows(new))
            if self.on_admit:
                self.on_admit(len(new))
        self.rows = [self.rows[r] for r in keep] + new
        self.gen = [self.gen[r] for r in keep] + [[] for _ in new]
        self.done = [False] * len(self.rows)
        if not parts:
            self.cache = None
            return
        if len(parts) == 1:
            kv, self.mask, self.last_pos, self.logits, self.seen = parts[0]
        else:
            length = max(p[1].shape[1] for p in parts)
            kv = [(torch.cat([_left_pad_kv(p[0][layer][0], length) for p in parts]),
                   torch.cat([_left_pad_kv(p[0][layer][1], length) for p in parts])) for layer in range(len(parts[0][0]))]
            self.mask = torch.cat([torch.nn.functional.pad(p[1], (length - p[1].shape[1], 0)) for p in parts])
            self.last_pos = torch.cat([p[2] for p in parts])
            self.logits = torch.cat([p[3] for p in parts])
            self.seen = torch.cat([p[4] for p in parts]) if self.penalty != 1.0 else None
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else 0
        if start:  # columns no live row attends to any more
            self.mask = self.mask[:, start:]
            kv = [(k[:, :, start:], v[:, :, start:]) for k, v in kv]
        self.cache = _cache_from(kv, self.spare)

    # -- decoding --------------------------------------------------------------------------------
    def _finish(self, r: int) -> None:
        self.done[r] = True
        i = self.rows[r]
        self.out[i] = self.gen[r]
        self.stats.generated_tokens += len(self.gen[r])
        if self.on_row_done:
            self.on_row_done(i, self.gen[r])

    def run(self):
        torch = self.torch
        queue = list(self.order)
        with torch.no_grad():
            while queue or self.rows:
                finished = sum(self.done)
                if not self.rows or finished == len(self.rows) or (
                        queue and len(self.rows) - finished <= self.batch_size * (1 - COMPACT_SHARE)) or (
                        not queue and finished >= COMPACT_SHARE * len(self.rows)):
                    self._rebuild(queue)
                    if not self.rows:
                        break
                scores = self.logits.float()
                if self.seen is not None:
                    penalised = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
                    scores = torch.where(self.seen, penalised, scores)
                nxt = scores.argmax(dim=-1)
                is_end = torch.isin(nxt, self.eos).tolist()
                toks = nxt.tolist()
                self.stats.decode_row_steps += len(self.rows)
                for r in range(len(self.rows)):
                    if self.done[r]:
                        continue
                    if is_end[r]:
                        self._finish(r)
                        continue
                    self.gen[r].append(toks[r])
                    if len(self.gen[r]) >= self.max_new_tokens:
                        self._finish(r)
                if all(self.done):
                    continue
                if self.seen is not None:
                    self.seen[torch.arange(len(self.rows), device=self.device), nxt] = True
                self.last_pos = self.last_pos + 1
                self.mask = torch.cat([self.mask, torch.ones(len(self.rows), 1, dtype=self.mask.dtype,
                                                             device=self.device)], dim=1)
                self.logits, self.cache = self.forward(nxt[:, None], self.mask, self.last_pos[:, None], self.cache)
        return self.out


def greedy_generate(model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_ids: set[int],
                    pad_id: int, device, batch_size: int, repetition_penalty: float = 1.0,
                    on_row_done: Callable[[int, list[int]], None] | None = None,
                    on_admit: Callable[[int], None] | None = None) -> tuple[list[list[int]], DecodeStats]:
    """Greedy-decode every prompt (a list of token ids) with at most ``batch_size`` rows in flight; returns the
    generated ids of each prompt (end token excluded) in input order, and counters of the work done."""
    if max_new_tokens <= 0:
        return [[] for _ in prompts], DecodeStats()
    dec = _Decoder(model, prompts, max_new_tokens=max_new_tokens, eos_ids=eos_ids, pad_id=pad_id, device=device,
                   batch_size=batch_size, repetition_penalty=repetition_penalty, on_row_done=on_row_done,
                   on_admit=on_admit)
    out = dec.run()
    return out, dec.stats
