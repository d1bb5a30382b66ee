"""Linear layers through oneDNN with weights reordered once, for CPU inference.

``nn.Linear`` on CPU calls a GEMM that re-packs the whole weight matrix on every call. Decoding a small
batch is bound by reading weights, so that packing is most of a step: on the 2-core benchmark machine a
decode step's linear layers ran 1.8-2.3x faster with weights reordered once into oneDNN's blocked layout
(``torch.ops.mkldnn._reorder_linear_weight`` + ``_linear_pointwise``, the pair ``torch.compile`` uses for CPU
"freezing"), and a 680-row prefill call ~11% faster (``benchmarks/generation_throughput.py``).

:func:`packed_linears` patches the forward of every plain ``nn.Linear`` on the CPU (LoRA wrappers keep working:
their base layer and adapter matrices are plain ``nn.Linear`` modules) for the duration of a ``with`` block, and
only when autograd is off; outside it, or where oneDNN is unavailable, nothing changes. Results differ from
``nn.Linear`` by float rounding only (a different summation order; ~1e-6 relative).
"""

from __future__ import annotations

import contextlib

PACK_HINT = 256  # the batch-size hint oneDNN picks its layout for: 256 served 1..5,120 rows best here


def _usable(torch, weight) -> bool:
    return (weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@contextlib.contextmanager
def packed_linears(model, enabled: bool = True):
    """Run ``model``'s CPU ``nn.Linear`` layers on once-reordered oneDNN weights inside the block; yields the
    number of layers patched (0 when disabled, off-CPU or unsupported)."""
    import torch

    patched: list[torch.nn.Module] = []
    try:
        if enabled:
            for mod in model.modules():
                if type(mod) is not torch.nn.Linear or not _usable(torch, mod.weight):
                    continue
                try:
                    packed = torch.ops.mkldnn._reorder_linear_weight(mod.weight.detach(), PACK_HINT)
                except RuntimeError:  # this build's oneDNN refuses the layout: leave the layer as it is
                    continue
                mod.forward = _packed_forward(mod, packed)
                patched.append(mod)
        yield len(patched)
    finally:
        for mod in patched:
            del mod.forward


def _packed_forward(mod, packed):
    import torch

    original = type(mod).forward.__get__(mod)
    bias = None if mod.bias is None else mod.bias.detach()

    def forward(x):
        if torch.is_grad_enabled() or x.dtype != packed.dtype:
            return original(x)
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    return forward
