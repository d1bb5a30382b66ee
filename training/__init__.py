"""Training for pytest-skillbench: LoRA / partial / full SFT (TRL + PEFT) with a verified assistant-only loss,
plus the corpus pipeline (``skillbench trace``, ``skillbench corpus build``).

Entry points: ``skillbench train ...`` and ``python -m training ...`` (same arguments; multi-GPU:
``accelerate launch -m training ...``). See docs/training.md.
"""
