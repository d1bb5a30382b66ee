"""``skillbench train | trace | corpus``: the command-line side of the ``training`` package.

Only argument parsing lives here; torch, transformers, peft and trl are imported when a command runs.
"""

from __future__ import annotations

from ..training import corpus, trace, train


def _cmd_train(args) -> int:
    train.run_train(args)
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="LoRA / partial / full SFT of a student on a chat-rows corpus")
    train.add_train_arguments(p)
    p.set_defaults(func=_cmd_train)
    trace.register(sub)
    corpus.register(sub)
