"""Chat-template patcher: wrap assistant output in ``{% generation %}...{% endgeneration %}``.

TRL's ``assistant_only_loss`` (and transformers' ``return_assistant_tokens_mask``) need those markers; most
stock templates lack them. The patch keeps the role header (``<|im_start|>assistant\\n``) *outside* the
markers and puts the assistant content and its end-of-turn token (``<|im_end|>``) *inside*, so the model is
trained on what it must generate, including when to stop.

Supported families:

* ``already-marked``: the template has the markers; used as is.
* ``chatml``: one ``{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}``
  expression in the message loop (SmolLM2, Qwen2/2.5-style, the test fixtures).
* ``qwen3``: the Qwen3 template, whose assistant branch renders a ``<think>...</think>`` block and tool calls;
  the header is hoisted out of the branch and everything after it (think block, content, tool calls,
  ``<|im_end|>``) is marked.
* ``trl:<family>``: otherwise TRL's own training template, when TRL knows the family.

Every patch is checked to render byte-identical text to the original on probe conversations
(``check_equivalent``); the trainer repeats the check on every corpus row.
"""

from __future__ import annotations

import codecs
import hashlib
import re

from pytest_skillbench.errors import SkillbenchError

GEN_OPEN = "{% generation %}"
GEN_CLOSE = "{% endgeneration %}"
_MARKER_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")
_EXPR_RE = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_ROLE_FORMS = {"message['role']", 'message["role"]', "message.role"}
_CONTENT_FORMS = {"message['content']", 'message["content"]', "message.content", "content"}
START, END = "<|im_start|>", "<|im_end|>"

PROBES: list[list[dict]] = [
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}],
    [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Step 1 - x.\n\nANSWER: yes"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "one"}, {"role": "assistant", "content": "1"},
     {"role": "user", "content": "two"}, {"role": "assistant", "content": "2\n"}],
    [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nA"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}],
]


def template_hash(template: str | None) -> str:
    """The same hash the plugin's HF backend records as ``chat_template`` in its fingerprint."""
    return hashlib.sha256((template or "").encode()).hexdigest()[:16]


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and bool(_MARKER_RE.search(template))


def _jinja_unescape(body: str) -> str:
    # What jinja2's lexer does with a string literal's body.
    return codecs.decode(body.encode("ascii", "backslashreplace"), "unicode-escape")


def _lit(text: str) -> str:
    """A Jinja string literal for ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _split_terms(expr: str) -> list[tuple[str, str]] | None:
    """``'a' + x + 'b'`` -> [("lit", "a"), ("code", "x"), ("lit", "b")], adjacent literals merged."""
    terms: list[tuple[str, str]] = []
    i, n, cur = 0, len(expr), ""
    while i < n:
        ch = expr[i]
        if ch in "'\"":
            j = i + 1
            while j < n and expr[j] != ch:
                j += 2 if expr[j] == "\\" else 1
            if j >= n:
                return None
            if cur.strip():
                return None  # a literal glued to code without "+": not a plain concatenation
            terms.append(("lit", _jinja_unescape(expr[i + 1:j])))
            cur = ""
            i = j + 1
        elif ch == "+":
            if cur.strip():
                terms.append(("code", "".join(cur.split())))
            cur = ""
            i += 1
        elif ch in "([{":
            depth, j = 0, i
            while j < n:
                if expr[j] in "([{":
                    depth += 1
                elif expr[j] in ")]}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            cur += expr[i:j + 1]
            i = j + 1
        else:
            cur += ch
            i += 1
    if cur.strip():
        terms.append(("code", "".join(cur.split())))
    merged: list[tuple[str, str]] = []
    for kind, val in terms:
        if kind == "lit" and merged and merged[-1][0] == "lit":
            merged[-1] = ("lit", merged[-1][1] + val)
        else:
            merged.append((kind, val))
    return merged


def _patch_chatml(template: str) -> str | None:
    out, pos, hits = [], 0, 0
    for m in _EXPR_RE.finditer(template):
        terms = _split_terms(m.group(2))
        if not terms or len(terms) != 5:
            continue
        (k1, v1), (k2, v2), (k3, v3), (k4, v4), (k5, v5) = terms
        if not (k1 == "lit" and v1 == START and k2 == "code" and v2 in _ROLE_FORMS and k3 == "lit" and v3 == "\n"
                and k4 == "code" and v4 in _CONTENT_FORMS and k5 == "lit" and v5.startswith(END)):
            continue
        lead, trail = m.group(1), m.group(3)
        role, content, tail = v2.replace('"', "'"), v4.replace('"', "'"), v5[len(END):]
        assistant = ("{{ " + _lit(START) + " + " + role + " + " + _lit("\n") + " }}" + GEN_OPEN + "{{ " + content
                     + " + " + _lit(END) + " }}" + GEN_CLOSE + ("{{ " + _lit(tail) + " }}" if tail else ""))
        original = "{{ " + m.group(2).strip() + " }}"
        out.append(template[pos:m.start()])
        out.append(f"{{%{lead} if {role} == 'assistant' %}}{assistant}{{% else %}}{original}{{% endif {trail}%}}")
        pos = m.end()
        hits += 1
    if hits != 1:
        return None
    out.append(template[pos:])
    return "".join(out)


_TAG_RE = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.DOTALL)


def _patch_qwen3(template: str) -> str | None:
    """Hoist the assistant header out of the branch; mark the rest of the branch up to ``<|im_end|>``."""
    branch_re = re.compile(r"\{%-?\s*elif\s+message\.role\s*==\s*[\"']assistant[\"']\s*-?%\}")
    m = branch_re.search(template)
    if not m or "<think>" not in template:
        return None
    # The branch ends at the next tag at the same depth (elif/else/endif of the role chain).
    depth, end = 0, None
    for t in _TAG_RE.finditer(template, m.end()):
        name = t.group(1)
        if name in ("if", "for", "macro", "call", "filter", "generation"):
            depth += 1
        elif name in ("endif", "endfor", "endmacro", "endcall", "endfilter", "endgeneration"):
            if depth == 0:
                end = t.start()
                break
            depth -= 1
        elif name in ("elif", "else") and depth == 0:
            end = t.start()
            break
    if end is None:
        return None
    branch = template[m.end():end]
    header_re = re.compile(r"'<\|im_start\|>'\s*\+\s*message\.role\s*\+\s*'\\n(?:<think>\\n)?'\s*\+\s*")
    headers = list(header_re.finditer(branch))
    closes = list(re.finditer(r"\{\{-?\s*'<\|im_end\|>\\n'\s*-?\}\}", branch))
    if not headers or not closes:
        return None
    close = closes[-1]
    if any(h.start() > close.start() for h in headers):
        return None
    # Insert point: the top-level statement of the branch that contains the first header.
    first = headers[0].start()
    depth, insert = 0, None
    for t in _TAG_RE.finditer(branch):
        if t.start() > first:
            break
        name = t.group(1)
        if name in ("if", "for"):
            if depth == 0:
                insert = t.start()
            depth += 1
        elif name in ("endif", "endfor"):
            depth -= 1
            if depth == 0:
                insert = None
    if insert is None:
        expr = branch.rfind("{{", 0, first)
        insert = expr
    if insert < 0:
        return None

    def strip_header(h: re.Match) -> str:
        return "'<think>\\n' + " if "<think>" in h.group(0) else ""

    body = branch[insert:close.start()]
    body = header_re.sub(strip_header, body)
    new_branch = (branch[:insert] + "{{- " + _lit(START) + " + message.role + " + _lit("\n") + " }}" + GEN_OPEN
                  + body + "{{- " + _lit(END) + " }}" + GEN_CLOSE + "{{- " + _lit("\n") + " }}"
                  + branch[close.end():])
    return template[:m.end()] + new_branch + template[end:]


def _render(tok, template: str, messages: list[dict], add_generation_prompt: bool, **kw) -> str:
    return tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                   add_generation_prompt=add_generation_prompt, **kw)


def check_equivalent(tok, original: str, patched: str, conversations: list[list[dict]] | None = None,
                     names: list[str] | None = None) -> None:
    """Raise unless ``patched`` renders byte-identical text to ``original`` on every conversation."""
    convs = conversations if conversations is not None else PROBES
    for i, msgs in enumerate(convs):
        cases = [(msgs, True)] if msgs[-1]["role"] != "assistant" else [(msgs, False), (msgs, True)]
        if msgs[-1]["role"] == "assistant" and len(msgs) > 1:
            cases.append((msgs[:-1], True))  # the prompt as the plugin renders it at evaluation
        for msgs, agp in cases:
            for kw in ({}, {"enable_thinking": False}):
                try:
                    a = _render(tok, original, msgs, agp, **kw)
                except Exception:  # noqa: BLE001 - the original cannot render it; nothing to compare
                    continue
                b = _render(tok, patched, msgs, agp, **kw)
                if a != b:
                    k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
                    where = names[i] if names else f"probe conversation {i}"
                    raise SkillbenchError(f"{where}: the patched chat template renders it differently from the "
                                          f"original at character {k}: {a[k:k + 40]!r} vs {b[k:k + 40]!r}")


def patch_template(tok, template: str | None = None) -> tuple[str, str]:
    """Return ``(patched_template, family)``; raise ``SkillbenchError`` for an unsupported template."""
    original = template if template is not None else tok.chat_template
    if not original or not isinstance(original, str):
        raise SkillbenchError("the base tokenizer has no chat template: the assistant-only loss needs one")
    if has_generation_markers(original):
        return original, "already-marked"
    for family, fn in (("qwen3", _patch_qwen3), ("chatml", _patch_chatml)):
        patched = fn(original)
        if patched is not None:
            check_equivalent(tok, original, patched)
            return patched, family
    try:
        from trl.chat_template_utils import get_training_chat_template

        class _Shim:
            chat_template = original

        patched = get_training_chat_template(_Shim())  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - TRL does not know this template
        patched = None
    if patched and has_generation_markers(patched):
        check_equivalent(tok, original, patched)
        return patched, "trl"
    raise SkillbenchError("unsupported chat template: cannot add {% generation %} markers (supported: ChatML "
                          "one-line message expression, Qwen3, or a template that already has the markers)")
