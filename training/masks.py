"""Assistant-only loss, verified on the real corpus before a single step is trained.

For every row: render it with the patched template, take the assistant-token mask, and check that

* the mask is not empty after truncation to ``max_length`` (TRL would otherwise drop the row silently or,
  with a template lacking markers, train on every token);
* the masked tokens, decoded, are exactly the assistant turns: one contiguous span per assistant message,
  equal to its content plus the end-of-turn token (a leading ``<think>...</think>`` block that the template
  renders for thinking models is allowed), and nothing else (no role header, no system or user text).

Any failing row stops training with a message naming the row (file:line, task uid). The verified token ids and
labels are what the trainer receives, so what was checked is what is trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_skillbench.errors import SkillbenchError

_THINK_RE = re.compile(r"^<think>.*?</think>\s*", re.DOTALL)


@dataclass
class MaskedExample:
    input_ids: list[int]
    labels: list[int]
    n_tokens: int  # before truncation
    n_loss: int  # assistant tokens kept after truncation
    truncated: bool


@dataclass
class MaskReport:
    rows: int
    loss_tokens: int
    total_tokens: int
    truncated_rows: int
    longest: int

    def to_dict(self) -> dict:
        return {"rows": self.rows, "loss_tokens": self.loss_tokens, "total_tokens": self.total_tokens,
                "truncated_rows": self.truncated_rows, "longest_row_tokens": self.longest,
                "loss_token_share": self.loss_tokens / self.total_tokens if self.total_tokens else None}


def _spans(mask: list[int]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, m in enumerate(mask + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def end_of_turn_token(tok) -> str:
    vocab = tok.get_vocab()
    for cand in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        if cand in vocab:
            return cand
    return tok.eos_token or ""


def encode_row(tok, messages: list[dict], template: str) -> tuple[list[int], list[int]]:
    out = tok.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out.get("assistant_masks") or [0] * len(ids))
    return ids, mask


def check_row(tok, messages: list[dict], template: str, max_length: int | None, where: str,
              eot: str | None = None) -> MaskedExample:
    """Encode one chat row and verify its loss mask; raise ``SkillbenchError`` naming ``where`` if it is wrong."""
    eot = end_of_turn_token(tok) if eot is None else eot
    assistants = [m.get("content") or "" for m in messages if m.get("role") == "assistant"]
    if not assistants or not any(a.strip() for a in assistants):
        raise SkillbenchError(f"{where}: no assistant content, so no assistant tokens in the loss mask; "
                              "fix or remove the row")
    ids, mask = encode_row(tok, messages, template)
    spans = _spans(mask)
    if not spans:
        raise SkillbenchError(f"{where}: the loss mask has no assistant tokens (the chat template does not mark "
                              "assistant output with {% generation %})")
    if len(spans) != len(assistants):
        raise SkillbenchError(f"{where}: {len(spans)} masked span(s) for {len(assistants)} assistant message(s); "
                              "the loss would include non-assistant tokens or miss an assistant turn")
    for k, ((a, b), content) in enumerate(zip(spans, assistants)):
        text = tok.decode(ids[a:b], skip_special_tokens=False)
        body = _THINK_RE.sub("", text, count=1) if text.startswith("<think>") else text
        if body not in (content + eot, content.lstrip("\n") + eot):
            shown = text if len(text) < 160 else text[:70] + " ... " + text[-70:]
            raise SkillbenchError(f"{where}: assistant turn {k + 1}: the masked tokens are not exactly the "
                                  f"assistant content + {eot!r}; masked text is {shown!r}")
    n = len(ids)
    if max_length and n > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    labels = [t if m else -100 for t, m in zip(ids, mask)]
    n_loss = sum(1 for m in mask if m)
    if n_loss == 0:
        raise SkillbenchError(f"{where}: {n} tokens, and truncation to --max-length {max_length} leaves no "
                              "assistant token in the loss; raise --max-length or shorten the row")
    return MaskedExample(ids, labels, n, n_loss, n > len(ids))


def verify_corpus(tok, rows, template: str, max_length: int | None) -> tuple[list[MaskedExample], MaskReport]:
    """Check every row (a ``corpus.ChatRow``); return the encoded examples and a summary."""
    eot = end_of_turn_token(tok)
    out = []
    for row in rows:
        out.append(check_row(tok, row.messages, template, max_length, row.where, eot))
    report = MaskReport(rows=len(out), loss_tokens=sum(e.n_loss for e in out),
                        total_tokens=sum(len(e.input_ids) for e in out),
                        truncated_rows=sum(e.truncated for e in out),
                        longest=max((e.n_tokens for e in out), default=0))
    return out, report
