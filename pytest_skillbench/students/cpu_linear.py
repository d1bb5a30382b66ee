"""Linear layers through oneDNN with weights reordered once, for CPU inference.

``nn.Linear`` on CPU calls a GEMM that re-packs the whole weight matrix on every call. Decoding a small
batch is bound by reading weights, so that packing is most of a step: on the 2-core benchmark machine the
linear layers of a decode step ran ~2x faster with weights reordered once into oneDNN's blocked layout
(``torch.ops.mkldnn._reorder_linear_weight`` + ``_linear_pointwise``, the pair ``torch.compile`` uses for CPU
"freezing"), and prefill calls of 680-5,120 rows ~1.2-1.5x faster (``benchmarks/engine_kernels.py``).

:func:`packed_linears` patches the forward of every plain ``nn.Linear`` on the CPU (LoRA wrappers keep working:
their base layer and adapter matrices are plain ``nn.Linear`` modules) for the duration of a ``with`` block, and
only when autograd is off; outside it, or where oneDNN is unavailable, nothing changes. The reordered copies
take as much memory as the weights; when that is more than half of the memory still available, nothing is
patched. Results differ from ``nn.Linear`` by float rounding only (a different summation order; ~1e-6
relative).
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
    layers = [m for m in model.modules() if type(m) is torch.nn.Linear and _usable(torch, m.weight)] if enabled else []
    size = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    free = _available_bytes()
    if free is not None and size > free // 2:  # the reordered copies would crowd out the KV cache
        layers = []
    try:
        if layers:
            for mod in layers:
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


def _available_bytes() -> int | None:
    """Memory the OS can still give this process (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _packed_forward(mod, packed):
    import torch

    original = type(mod).forward.__get__(mod)
    bias = None if mod.bias is None else mod.bias.detach()

    def forward(x):
        if torch.is_grad_enabled() or x.dtype != packed.dtype:
            return original(x)
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

    return forward
