"""Training for pytest-skillbench: LoRA / partial / full SFT (TRL + PEFT) with a verified assistant-only loss,
plus the corpus pipeline (``skillbench trace``, ``skillbench corpus build``).

Entry points: ``skillbench train ...`` and ``python -m pytest_skillbench.training ...`` (same arguments;
multi-GPU: ``accelerate launch -m pytest_skillbench.training ...``). See docs/training.md. The folder is
installed as ``pytest_skillbench.training`` (setuptools package-dir), never as a top-level ``training``.
"""
