"""Greedy decoding for the hf backend: shared-prefix prefill and ragged batches.

Why not ``model.generate`` on padded batches: bench prompts share long prefixes (the solver prompt; in the
curated condition also the skill's SKILL block, ~600 of a ~770-token prompt) and small students answer in a
few dozen tokens, so a static padded batch spends most of its time re-reading identical prefixes and decoding
rows that have already stopped. This loop:

1. plans shared prefixes ("carriers") from the prompts' token ids: prompts are sorted so those sharing a
   prefix are neighbours; a prompt's shared prefix is its longest common prefix with a neighbour, and prompts
   whose shared prefixes differ by a few tokens read one carrier. Carriers that share a prefix among
   themselves (the solver prompt starts every SKILL-block carrier) get a parent carrier, so no prefix is
   computed twice;
2. prefills each carrier once (after its parent, reading the parent's KV cache) into one shared copy;
3. prefills the prompts' own suffixes in calls of similar-length rows (little padding). A row's KV buffer
   holds only its own positions (suffix, then generated tokens), right-aligned in one preallocated batch
   buffer; attention over its carrier is computed once per group of rows that read it and merged exactly
   with the row's own attention (``cascade.py``), and explicit position ids make each row see exactly its
   own prompt at exactly the positions it would have alone;
4. decodes one token per active row per step, writing keys/values in place, applying the repetition penalty
   as transformers' ``RepetitionPenaltyLogitsProcessor`` does (gather, penalise, scatter over the row's
   prompt and generated tokens, never over padding); rows that emitted an end token are dropped from the
   batch and their slots refilled from the queue (continuous batching).

On CPU the linear layers run on weights reordered once for oneDNN (``cpu_linear.py``). For a model whose
attention ``cascade.py`` does not reproduce (sliding windows, soft-capping, ...) every prompt is prefilled
whole and the model's own attention runs unchanged.

Greedy output equals one-prompt-at-a-time ``generate()`` up to float rounding in the kernels
(``benchmarks/generation_throughput.py`` reports the share of identical texts). Nothing here assumes a CPU.

Answer forcing (``forcing.py``) rides on the same batch: when a row stops, ``force`` may give it tokens to
read next (``"\nANSWER:"``) instead of retiring it; the row reads them one per decode step in place of its end
token (its KV cache already holds prompt + response, so nothing is prefilled again), then either the
log-probabilities of given option tokens are read off the next logits, or up to ``force_max_tokens`` more
tokens are decoded greedily. ``force_only`` forces rows from the start (a cached response, given as part of
the prompt).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from . import cascade
from .cpu_linear import packed_linears

ENGINE_VERSION = "continuous-prefix-v2"  # recorded in the generation config: part of the cache key
MIN_SHARED = 16  # shared prefixes shorter than this are prefilled with the row's suffix
SLACK = 8  # prompts whose shared prefixes differ only in their last SLACK tokens read one carrier
COMPACT_SHARE = 0.25  # drop finished rows once they are this share of the batch (a KV copy is not free)
SPARE_CAP = 1024  # decode room preallocated per batch (max_new_tokens + 1 up to this); beyond it the buffer grows
PAD_WASTE = 0.1  # a prefill call takes similar-length rows while padding stays under this share of its positions
STACK_ROWS = 4  # decode: carriers read by at most this many rows share one attention call (cascade.Stacked)


FORCE_ROOM = 40  # decode room added per row when answers may be forced (suffix + forced tokens)


@dataclass
class ForceSpec:
    """What a stopped row reads next: ``feed`` token ids, then either the log-probs of ``option_ids`` (one
    list of token ids per option) or a greedy decode (``option_ids`` None)."""

    feed: list[int]
    option_ids: list[list[int]] | None = None


@dataclass
class DecodeStats:
    admissions: int = 0
    forward_calls: int = 0
    prompt_tokens: int = 0  # sum of prompt lengths
    prefill_positions: int = 0  # token positions actually computed in prefill, padding included
    decode_row_steps: int = 0  # (row, step) pairs computed while decoding, finished-but-not-dropped rows included
    generated_tokens: int = 0
    compactions: int = 0
    forced_rows: int = 0
    forced_row_steps: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _token_order(seqs: Sequence[Sequence[int]]) -> list[int]:
    """Indices of the sequences sorted by their token ids (ties by index): shared prefixes become neighbours."""
    return sorted(range(len(seqs)), key=lambda i: (list(seqs[i]), i))


def _share(seqs: Sequence[Sequence[int]], order: Sequence[int]) -> tuple[list[int], list[tuple[int, ...]], list[int]]:
    """Shared-prefix length, carriers and carrier index of each sequence (``order``: the sequences sorted)."""
    n = len(seqs)
    best = [0] * n
    for a, b in zip(order, order[1:]):
        k = _lcp(seqs[a], seqs[b])
        best[a], best[b] = max(best[a], k), max(best[b], k)
    capped = [min(b, len(s) - 1) for b, s in zip(best, seqs)]  # never the whole sequence
    plen = [c if c >= MIN_SHARED else 0 for c in capped]
    carriers: list[tuple[int, ...]] = []
    carrier_of = [-1] * n
    for i in sorted(range(n), key=lambda i: (-plen[i], i)):
        p = plen[i]
        if p == 0:
            continue
        head = tuple(seqs[i][:p])
        for c, car in enumerate(carriers):
            k = _lcp(car, head)
            if k >= max(MIN_SHARED, p - SLACK, len(car) - SLACK):
                carriers[c], carrier_of[i] = car[:k], c
                break
        else:
            carriers.append(head)
            carrier_of[i] = len(carriers) - 1
    # every sequence reads its carrier whole: a carrier is the common prefix of the sequences that read it
    plen = [len(carriers[c]) if c >= 0 else 0 for c in carrier_of]
    return plen, carriers, carrier_of


def prefix_plan(prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[int], list[tuple[int, ...]], list[int]]:
    """Admission order, each prompt's shared-prefix length, the carrier prefixes, and each prompt's carrier.

    Prompts are ordered by their token ids, so prompts sharing a prefix sit together. A prompt's shared prefix
    is its longest common prefix with a neighbour in that order (never its whole prompt; none if shorter than
    ``MIN_SHARED``). A carrier is a prefix that is prefilled once and read whole by every prompt assigned to it:
    prompts whose shared prefixes differ only in their last ``SLACK`` tokens share one carrier (their common
    prefix; the few tokens past it move to each prompt's own suffix).
    """
    order = _token_order(prompts)
    plen, carriers, carrier_of = _share(prompts, order)
    return order, plen, carriers, carrier_of


def carrier_tree(carriers: Sequence[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[int], list[int]]:
    """Parents for carriers: returns the carriers plus any root prefixes they share, and for each, how many of
    its first positions it reads from its parent (0: none) and the parent's index (-1: none)."""
    allc = list(carriers)
    plen, parent = [0] * len(allc), [-1] * len(allc)
    level = list(range(len(allc)))
    while len(level) > 1:
        seqs = [allc[i] for i in level]
        p, roots, root_of = _share(seqs, _token_order(seqs))
        if not roots:
            break
        base = len(allc)
        allc.extend(roots)
        plen.extend([0] * len(roots))
        parent.extend([-1] * len(roots))
        for j, r in enumerate(root_of):
            if r >= 0:
                plen[level[j]], parent[level[j]] = p[j], base + r
        level = list(range(base, len(allc)))
    return allc, plen, parent


def _chunks(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped into prefill calls: longest first, a call takes the next row while padding stays under
    ``PAD_WASTE`` of its positions."""
    idx = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    total = 0
    for i in idx:
        if out and lengths[out[-1][0]] * (len(out[-1]) + 1) <= (1 + PAD_WASTE) * (total + lengths[i]):
            out[-1].append(i)
            total += lengths[i]
        else:
            out.append([i])
            total = lengths[i]
    return out


@functools.cache
def _grow_layer_class():
    """A KV-cache layer over a preallocated buffer with spare room along the sequence: appending writes in
    place, where transformers' ``DynamicLayer`` copies the whole cache with ``torch.cat`` (at 16 rows x 900
    positions that copy was a third of a decode step on a 2-core CPU). The buffer may be a view into a larger
    batch buffer (a prefill call writes its rows straight into the decode batch); it is reallocated only if a
    decode step runs past its room."""
    import torch.nn.functional as F
    from transformers.cache_utils import DynamicLayer

    class GrowLayer(DynamicLayer):
        def __init__(self, kbuf, vbuf, n: int):
            super().__init__()
            self.device, self.is_initialized = kbuf.device, True
            self.kbuf, self.vbuf, self.n = kbuf, vbuf, n
            self.keys, self.values = kbuf[:, :, :n], vbuf[:, :, :n]

        def update(self, key_states, value_states, *args, **kwargs):
            m = key_states.shape[2]
            if self.n + m > self.kbuf.shape[2]:
                grow = max(m, self.kbuf.shape[2] // 2)
                self.kbuf = F.pad(self.kbuf[:, :, :self.n], (0, 0, 0, grow))
                self.vbuf = F.pad(self.vbuf[:, :, :self.n], (0, 0, 0, grow))
            self.kbuf[:, :, self.n:self.n + m] = key_states
            self.vbuf[:, :, self.n:self.n + m] = value_states
            self.n += m
            self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]
            return self.keys, self.values

    return GrowLayer


def _pad_ids(rows: list):
    """Rows of token ids of different lengths as one (rows, longest) tensor, each padded with its own first id
    (a repeat: gathering and scattering it twice changes nothing)."""
    import torch

    width = max(r.numel() for r in rows)
    return torch.stack([torch.cat([r, r[:1].expand(width - r.numel())]) for r in rows])


def _cache_over(bufs: list[tuple], n: int):
    """A transformers ``DynamicCache`` whose layers hold the first ``n`` positions of the given buffers."""
    from transformers import DynamicCache

    cache = DynamicCache()
    layer = _grow_layer_class()
    cache.layers = [layer(k, v, n) for k, v in bufs]
    return cache


def _cache_kwarg(model) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; use whichever this version's forward takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _kv_shape(model) -> tuple[int, int, int, object]:
    """(layers, key/value heads, head dim, dtype) of the model's KV cache."""
    cfg = cascade.text_config(model)
    heads = cfg.num_attention_heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return (cfg.num_hidden_layers, getattr(cfg, "num_key_value_heads", None) or heads, dim,
            model.get_input_embeddings().weight.dtype)


class _Decoder:
    """Continuous greedy batching: admit prompts while there is room, decode one token per live row per step,
    retire rows at an end token, refill their slots from the queue.

    A row's KV buffer holds only its own positions (its prompt past the shared prefix, then its generated
    tokens), right-aligned; shared prefixes live once in ``store`` and are attended to through
    :mod:`cascade` (or, for a model it does not support, are not shared: every prompt is prefilled whole)."""

    def __init__(self, model, prompts, *, max_new_tokens, eos_ids, pad_id, device, batch_size, repetition_penalty,
                 on_row_done, on_admit, share: bool, force=None, on_forced=None, force_only: bool = False,
                 force_max_tokens: int = 16, force_stop_ids=frozenset(), force_blank_ids=frozenset(),
                 on_step=None):
        import torch

        self.torch = torch
        self.on_step = on_step  # (tokens generated so far, rows in flight included): live progress
        self.model, self.prompts, self.device = model, [list(p) for p in prompts], device
        self.max_new_tokens, self.pad_id, self.batch_size = max_new_tokens, pad_id, max(1, batch_size)
        self.penalty = float(repetition_penalty)
        self.eos = torch.tensor(sorted(eos_ids), device=device, dtype=torch.long)
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self.layers, self.kv_heads, self.head_dim, self.dtype = _kv_shape(model)
        self.neg = torch.finfo(self.dtype).min  # additive mask value (finite: a fully masked pad row stays finite)
        self.on_row_done, self.on_admit = on_row_done, on_admit
        self.force, self.on_forced, self.force_only = force, on_forced, force_only
        self.force_max, self.force_stop = force_max_tokens, set(force_stop_ids)
        self.force_blank = set(force_blank_ids)  # whitespace-only tokens: a line break before any text ends nothing
        self.stats = DecodeStats()
        self.order, self.plen, carriers, self.carrier_of = prefix_plan(self.prompts)
        self.share = share  # shared prefixes through cascade attention (else every prompt is prefilled whole)
        if not share:
            self.plen, carriers, self.carrier_of = [0] * len(self.prompts), [], [-1] * len(self.prompts)
        self.carriers, self.cplen, self.cparent = carrier_tree(carriers)
        self.store: dict[int, list[tuple]] = {}  # carrier -> per-layer (k, v), shape (1, heads, len, dim)
        self.out: list[list[int] | None] = [None] * len(self.prompts)
        # the running batch
        self.rows: list[int] = []  # prompt index of each live row
        self.gen: list[list[int]] = []
        self.done: list[bool] = []
        # answer forcing, per live row: tokens still to read (None: not forcing), the option token ids (None:
        # greedy), the forced tokens decoded so far
        self.feed: list[list[int] | None] = []
        self.fopts: list[list[list[int]] | None] = []
        self.fgen: list[list[int]] = []
        self.cache = None  # a DynamicCache of growing layers (_grow_layer_class) over the batch's KV buffers
        self.length = 0  # KV positions (columns) in use
        self.batch_base: list[tuple] | None = None  # the buffers the batch's KV views live in
        self.spare_base: list[tuple] | None = None  # the previous batch's, reused by the next rebuild
        self.cache_kw = _cache_kwarg(model)
        self.spare = min(max_new_tokens, SPARE_CAP) + 1 + (FORCE_ROOM + force_max_tokens if force else 0)
        self.mask = self.last_pos = self.logits = self.prefix = None
        self.seen = None  # (rows, n) ids of each row's prompt and generated tokens, for the repetition penalty

    def forward(self, ids, mask, pos, cache, prefix):
        """One forward pass; returns last-position logits. With shared prefixes, ``mask`` is the rows' own
        additive 4-D mask and ``prefix`` their carriers (:mod:`cascade`); without, ``mask`` is the 2-D padding
        mask and the model's own attention runs unchanged."""
        self.stats.forward_calls += 1
        extra = {}
        if self.share:
            extra["shared_prefix"] = cascade.SharedPrefix(prefix)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                         **extra, **{self.cache_kw: cache})
        return out.logits[:, -1, :]

    def _buffers(self, rows: int, length: int) -> list[tuple]:
        shape = (rows, self.kv_heads, length, self.head_dim)
        t = self.torch
        return [(t.empty(shape, dtype=self.dtype, device=self.device),
                 t.empty(shape, dtype=self.dtype, device=self.device)) for _ in range(self.layers)]

    def _batch_buffers(self, rows: int, length: int) -> list[tuple]:
        """Views (rows, heads, length, dim) for a new batch. A batch alternates between two sets of buffers,
        allocated with room to spare: a fresh allocation of a gigabyte costs a page fault per 4 KiB on first
        write, which across a run's rebuilds was seconds."""
        spare = self.spare_base
        if not (spare and spare[0][0].shape[0] >= rows and spare[0][0].shape[2] >= length):
            spare = self._buffers(max(rows, self.batch_size), length + length // 4)
        self.spare_base, self.batch_base = self.batch_base, spare
        return [(k[:rows, :, :length], v[:rows, :, :length]) for k, v in spare]

    def _groups(self, carriers: list[int], stack: bool = False) -> list:
        """The rows' shared prefixes for :class:`cascade.SharedPrefix`: (row indices, carrier KV) per carrier
        read by the given rows (``-1``: none). ``stack`` (decode steps): carriers read by at most
        ``STACK_ROWS`` rows each go into one :class:`cascade.Stacked` call (one attention call over many small
        groups reads memory far better than one call per group)."""
        torch = self.torch
        rows: dict[int, list[int]] = {}
        for r, c in enumerate(carriers):
            if c >= 0:
                rows.setdefault(c, []).append(r)
        small = [c for c, rs in rows.items() if len(rs) <= STACK_ROWS] if stack else []
        groups: list = [(torch.tensor(rs, device=self.device), self.store[c])
                        for c, rs in rows.items() if len(small) < 2 or c not in small]
        if len(small) >= 2:
            groups.append(cascade.Stacked.build([rows[c] for c in small], [self.store[c] for c in small], self.neg,
                                        self.device))
        return groups

    # -- prefill ---------------------------------------------------------------------------------
    def _prefill_into(self, bufs, rows: slice, width: int, items: list[tuple[Sequence[int], int, int]]):
        """Prefill the own part of ``items`` (tokens, shared length, carrier) into rows ``rows`` of the buffers,
        right-aligned to column ``width``, in one forward call that reads each item's shared prefix from its
        carrier. Returns last-position logits, the rows' key masks (n, width; 1 = a real position) and last
        positions."""
        torch = self.torch
        n = len(items)
        own = [len(t) - p for t, p, _ in items]
        ls = max(own)
        ids = torch.full((n, ls), self.pad_id, dtype=torch.long, device=self.device)
        keys = torch.zeros(n, width, dtype=torch.long, device=self.device)
        for r, (toks, p, _) in enumerate(items):
            ids[r, ls - own[r]:] = torch.tensor(toks[p:], device=self.device)
            keys[r, width - own[r]:] = 1
        if width > ls:  # padding columns left of the call's own positions: masked, but must not hold NaN garbage
            for kb, vb in bufs:
                kb[rows, :, :width - ls].zero_()
                vb[rows, :, :width - ls].zero_()
        cache = _cache_over([(kb[rows, :, width - ls:], vb[rows, :, width - ls:]) for kb, vb in bufs], 0)
        valid = keys[:, width - ls:].bool()
        if self.share:  # the own part's mask, additive; the shared prefix is visible to every query
            causal = torch.ones(ls, ls, dtype=torch.bool, device=self.device).tril()
            mask = torch.zeros(n, 1, ls, ls, dtype=self.dtype, device=self.device).masked_fill_(
                ~(causal[None, None] & valid[:, None, None, :]), self.neg)
        else:  # the model's own attention builds its masks (sliding windows etc.) from the padding mask
            mask = valid.long()
        pos = torch.tensor([p for _, p, _ in items], device=self.device)[:, None] + valid.long().cumsum(1) - 1
        logits = self.forward(ids, mask, pos.clamp(min=0), cache, self._groups([c for _, _, c in items]))
        self.stats.prefill_positions += ids.numel()
        return logits, keys, pos[:, -1]

    def _ensure_carriers(self, needed) -> None:
        """Prefill the given carriers not in the store yet (after their parents), each into its own entry."""
        todo = sorted({c for c in needed if c >= 0 and c not in self.store})
        if not todo:
            return
        self._ensure_carriers({self.cparent[c] for c in todo})
        lengths = [len(self.carriers[c]) - self.cplen[c] for c in todo]
        for chunk in _chunks(lengths):
            cs = [todo[j] for j in chunk]
            ls = max(lengths[j] for j in chunk)
            bufs = self._buffers(len(cs), ls)
            self._prefill_into(bufs, slice(0, len(cs)), ls,
                               [(self.carriers[c], self.cplen[c], self.cparent[c]) for c in cs])
            for j, c in enumerate(cs):  # the parent's part + the carrier's own part, contiguous
                mine, parent = lengths[chunk[j]], self.cparent[c]
                self.store[c] = [tuple(b[j:j + 1, :, ls - mine:] if parent < 0 else self.torch.cat(
                    [pb[:, :, :self.cplen[c]], b[j:j + 1, :, ls - mine:]], dim=2) for b, pb in zip(kv, pkv))
                    for kv, pkv in zip(bufs, self.store[parent] if parent >= 0 else bufs)]

    def _drop_unused_carriers(self, queue: list[int]) -> None:
        """Free carriers no live row reads and no queued prompt will need (directly or as a parent)."""
        needed: set[int] = set()
        for i in self.rows + queue:
            c = self.carrier_of[i]
            while c >= 0 and c not in needed:
                needed.add(c)
                c = -1 if c in self.store else self.cparent[c]
        for c in [c for c in self.store if c not in needed]:
            del self.store[c]

    # -- admission -------------------------------------------------------------------------------
    def _rebuild(self, queue: list[int]) -> None:
        """Drop finished rows, admit queued prompts into the free slots (their prefill writes straight into
        the new batch's buffers), trim all-padding columns."""
        torch = self.torch
        keep = [r for r, d in enumerate(self.done) if not d]
        free = self.batch_size - len(keep)
        new = [queue.pop(0) for _ in range(min(free, len(queue)))]
        if keep and len(keep) < len(self.rows):
            self.stats.compactions += 1
        kept_width, start = 0, 0
        if keep:
            idx = torch.tensor(keep, device=self.device)
            used = self.mask[idx].any(dim=0).nonzero()
            start = int(used[0]) if used.numel() else self.length
            kept_width = self.length - start
        self._ensure_carriers({self.carrier_of[i] for i in new})
        chunks = [[new[j] for j in ch] for ch in _chunks([len(self.prompts[i]) - self.plen[i] for i in new])]
        width = max([kept_width] + [len(self.prompts[ch[0]]) - self.plen[ch[0]] for ch in chunks])
        total = len(keep) + len(new)
        self.rows = [self.rows[r] for r in keep] + [i for ch in chunks for i in ch]
        self._drop_unused_carriers(queue)
        if total == 0:
            self.gen, self.done, self.cache, self.length = [], [], None, 0
            self.feed, self.fopts, self.fgen = [], [], []
            return
        # room for the longest answer still to come
        bufs = self._batch_buffers(total, width + self.spare)
        masks, last, logits, seen = [], [], [], []
        if keep:
            for (kb, vb), layer in zip(bufs, self.cache.layers):
                kb[:len(keep), :, :width - kept_width].zero_()
                vb[:len(keep), :, :width - kept_width].zero_()
                kb[:len(keep), :, width - kept_width:width] = layer.kbuf[idx, :, start:self.length]
                vb[:len(keep), :, width - kept_width:width] = layer.vbuf[idx, :, start:self.length]
            masks.append(torch.nn.functional.pad(self.mask[idx, start:], (width - kept_width, 0)))
            last.append(self.last_pos[idx])
            logits.append(self.logits[idx])
            if self.seen is not None:
                seen.extend(self.seen[idx])
        row = len(keep)
        for ch in chunks:
            lg, m, lp = self._prefill_into(bufs, slice(row, row + len(ch)), width,
                                           [(self.prompts[i], self.plen[i], self.carrier_of[i]) for i in ch])
            row += len(ch)
            masks.append(m)
            last.append(lp)
            logits.append(lg)
            if self.penalty != 1.0:
                seen.extend(torch.tensor(sorted(set(self.prompts[i])), device=self.device) for i in ch)
        if new:
            self.stats.admissions += 1
            self.stats.prompt_tokens += sum(len(self.prompts[i]) for i in new)
            if self.on_admit:
                self.on_admit(len(new))
        self.gen = [self.gen[r] for r in keep] + [[] for _ in new]
        self.feed = [self.feed[r] for r in keep] + [None for _ in new]
        self.fopts = [self.fopts[r] for r in keep] + [None for _ in new]
        self.fgen = [self.fgen[r] for r in keep] + [[] for _ in new]
        self.done = [False] * len(self.rows)
        if self.force_only:  # a cached response is part of the prompt: force from the first step
            for r in range(len(keep), len(self.rows)):
                if not self._begin_forcing(r, []):
                    self.done[r] = True
        self.mask = torch.cat(masks)
        self.last_pos = torch.cat(last)
        self.logits = torch.cat(logits)
        self.seen = _pad_ids(seen) if self.penalty != 1.0 else None
        self.prefix = self._groups([self.carrier_of[i] for i in self.rows], stack=True)
        self.length = width
        self.cache = _cache_over(bufs, width)

    # -- decoding --------------------------------------------------------------------------------
    def _finish(self, r: int) -> bool:
        """The row's answer is complete: report it; then either retire the row or start forcing (True)."""
        i = self.rows[r]
        self.out[i] = self.gen[r]
        self.stats.generated_tokens += len(self.gen[r])
        if self.on_row_done:
            self.on_row_done(i, self.gen[r])
        if self._begin_forcing(r, self.gen[r]):
            return True
        self.done[r] = True
        return False

    def _begin_forcing(self, r: int, gen: list[int]) -> bool:
        spec = self.force(self.rows[r], gen) if self.force is not None else None
        if spec is None or not spec.feed:
            return False
        self.feed[r], self.fopts[r], self.fgen[r] = list(spec.feed), spec.option_ids, []
        self.stats.forced_rows += 1
        return True

    def _forced(self, r: int, result: dict) -> None:
        self.done[r] = True
        if self.on_forced:
            self.on_forced(self.rows[r], result)

    def _step_forcing(self, r: int, tok: int, is_end: bool, scores) -> int | None:
        """One decode step of a forcing row: the next token it reads, or None when its forcing is complete.
        A greedy forced answer cannot end before it has some text: until then an end token is never chosen
        (the next best token is), as ``generate(min_new_tokens=...)`` does."""
        self.stats.forced_row_steps += 1
        if self.feed[r]:
            return self.feed[r].pop(0)
        if self.fopts[r] is not None:  # the logits now follow the whole suffix: read the options off them
            lp = self.torch.log_softmax(self.logits[r].float(), dim=-1)
            self._forced(r, {"option_logprobs": [[float(lp[t]) for t in ids] for ids in self.fopts[r]]})
            return None
        has_text = any(t not in self.force_blank for t in self.fgen[r])
        if is_end and not has_text and len(self.fgen[r]) < self.force_max:
            row = scores[r].clone()
            row[self.eos] = float("-inf")
            tok, is_end = int(row.argmax()), False
        if is_end or len(self.fgen[r]) >= self.force_max:
            self._forced(r, {"tokens": list(self.fgen[r])})
            return None
        self.fgen[r].append(tok)
        ends_line = tok in self.force_stop and any(t not in self.force_blank for t in self.fgen[r])
        if ends_line or len(self.fgen[r]) >= self.force_max:
            self._forced(r, {"tokens": list(self.fgen[r])})
        return tok

    def run(self):
        torch = self.torch
        queue = list(self.order)
        self.live_tokens = 0
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
                if self.seen is not None:  # as RepetitionPenaltyLogitsProcessor: gather, penalise, scatter
                    vals = scores.gather(1, self.seen)
                    vals = torch.where(vals < 0, vals * self.penalty, vals / self.penalty)
                    scores = scores.scatter(1, self.seen, vals)
                nxt = scores.argmax(dim=-1)
                is_end = torch.isin(nxt, self.eos).tolist()
                toks = nxt.tolist()
                self.stats.decode_row_steps += len(self.rows)
                override: dict[int, int] = {}
                for r in range(len(self.rows)):
                    if self.done[r]:
                        continue
                    if self.feed[r] is not None:  # forcing: read the suffix, then the options or greedy tokens
                        tok = self._step_forcing(r, toks[r], is_end[r], scores)
                        if tok is not None and tok != toks[r]:
                            override[r] = tok
                        continue
                    if is_end[r]:
                        if self._finish(r):  # forcing reads its first suffix token in place of the end token
                            override[r] = self.feed[r].pop(0)
                        continue
                    self.gen[r].append(toks[r])
                    self.live_tokens += 1
                    if len(self.gen[r]) >= self.max_new_tokens:
                        self._finish(r)  # a forcing row reads this last token now, its suffix from the next step
                if self.on_step is not None:
                    self.on_step(self.live_tokens)
                if all(self.done):
                    continue
                if override:
                    nxt = nxt.clone()
                    for r, tok in override.items():
                        nxt[r] = tok
                if self.seen is not None:
                    self.seen = torch.cat([self.seen, nxt[:, None]], dim=1)
                self.last_pos = self.last_pos + 1
                self.mask = torch.cat([self.mask, torch.ones(len(self.rows), 1, dtype=self.mask.dtype,
                                                             device=self.device)], dim=1)
                mask = self.mask
                if self.share:
                    mask = torch.zeros(mask.shape, dtype=self.dtype, device=self.device).masked_fill_(
                        mask == 0, self.neg)[:, None, None, :]
                self.logits = self.forward(nxt[:, None], mask, self.last_pos[:, None], self.cache, self.prefix)
                self.length += 1
        return self.out


def greedy_generate(model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_ids: set[int],
                    pad_id: int, device, batch_size: int, repetition_penalty: float = 1.0,
                    on_row_done: Callable[[int, list[int]], None] | None = None,
                    on_admit: Callable[[int], None] | None = None,
                    packed_linear: bool = True,
                    force: Callable[[int, list[int]], ForceSpec | None] | None = None,
                    on_forced: Callable[[int, dict], None] | None = None, force_only: bool = False,
                    force_max_tokens: int = 16, force_stop_ids=frozenset(), force_blank_ids=frozenset(),
                    on_step: Callable[[int], None] | None = None) -> tuple[list[list[int]], DecodeStats]:
    """Greedy-decode every prompt (a list of token ids) with at most ``batch_size`` rows in flight; returns the
    generated ids of each prompt (end token excluded) in input order, and counters of the work done.
    ``packed_linear``: on CPU, run linear layers on once-reordered oneDNN weights (``cpu_linear.py``).

    Answer forcing: ``force(i, generated_ids)`` is asked when prompt ``i`` stops; a ``ForceSpec`` keeps the row
    going (see the module docstring) and ``on_forced(i, result)`` receives ``{"option_logprobs": [[...], ...]}``
    (raw log-softmax, no repetition penalty) or ``{"tokens": [...]}`` (greedy, at most ``force_max_tokens``,
    stopping early at an end token, or at a token in ``force_stop_ids`` (a line break) once some token outside
    ``force_blank_ids`` (whitespace) has been decoded: the answer is its first non-empty line). ``force_only``: no answer is generated;
    every row is forced at once (its prompt ends with its response). ``on_step(n)`` after every decoding step:
    ``n`` answer tokens generated so far, rows still in flight included (progress that does not wait for rows
    to finish)."""
    if max_new_tokens <= 0 and not force_only:
        return [[] for _ in prompts], DecodeStats()
    share = cascade.supported(model)
    dec = _Decoder(model, prompts, max_new_tokens=max_new_tokens, eos_ids=eos_ids, pad_id=pad_id, device=device,
                   batch_size=batch_size, repetition_penalty=repetition_penalty, on_row_done=on_row_done,
                   on_admit=on_admit, share=share, force=force, on_forced=on_forced, force_only=force_only,
                   force_max_tokens=force_max_tokens, force_stop_ids=force_stop_ids,
                   force_blank_ids=force_blank_ids, on_step=on_step)
    with packed_linears(model, enabled=packed_linear) as n, (cascade.activated(model) if share else nullcontext()):
        dec.stats.extra.update(packed_linear_layers=n, shared_prefixes=share)
        out = dec.run()
    return out, dec.stats
