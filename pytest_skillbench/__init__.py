"""pytest-skillbench: measure whether fine-tuning small language models on procedural skills works."""

from __future__ import annotations

__version__ = "0.1.0"

from .runs.store import load_episodes

__all__ = ["__version__", "load_episodes"]
