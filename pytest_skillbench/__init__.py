"""pytest-skillbench: measure whether fine-tuning small language models on procedural skills works."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_episodes"]


def load_episodes(path):  # noqa: ANN001 - re-exported helper, documented in analysis
    """One row per episode from a run directory or an episodes JSONL file, as a pandas DataFrame."""
    from .analysis import load_episodes as _load

    return _load(path)
