"""The JSON Lines rule every loader shares (pytest_skillbench/jsonl.py): rows split on "\\n" only, so text
that json.dumps(ensure_ascii=False) leaves raw inside a string -- U+2028, U+2029, U+0085, which
str.splitlines() treats as line ends -- stays in its row; unreadable files are one error naming the file."""

from __future__ import annotations

import json

import pytest

from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.jsonl import parse_line, read_lines
from pytest_skillbench.studies.probe import load_probe
from pytest_skillbench.training.corpus import load_chat_rows

ODD = "one\u2028two\u2029three\x85four"  # each a line end to str.splitlines(), written raw by json.dumps


def test_chat_rows_keep_raw_line_separators_inside_strings(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i} {ODD}"},
                          {"role": "assistant", "content": f"a{i} {ODD}\nANSWER: yes"}]} for i in range(2)]
    p = tmp_path / "c.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert ODD in p.read_text(encoding="utf-8")  # written raw, as build_corpus writes
    got = load_chat_rows(p)
    assert [r.line for r in got] == [1, 2]
    assert [r.messages for r in got] == [r["messages"] for r in rows]


def test_probe_items_keep_raw_line_separators_inside_strings(tmp_path):
    p = tmp_path / "probe.jsonl"
    p.write_text(json.dumps({"id": "x1", "kind": "instruction", "prompt": f"Say {ODD}"}, ensure_ascii=False) + "\n",
                 encoding="utf-8")
    assert [i.prompt for i in load_probe(str(p))] == [f"Say {ODD}"]


def test_unreadable_and_malformed_files_are_one_error_naming_them(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"a": "caf\xe9"}\n')
    with pytest.raises(SkillbenchError, match="cannot read corpus: not UTF-8 text") as err:
        read_lines(bad, "corpus")
    assert "latin1.jsonl" in str(err.value)
    with pytest.raises(SkillbenchError, match="cannot read corpus"):
        read_lines(tmp_path / "missing.jsonl", "corpus")
    with pytest.raises(SkillbenchError, match=r"malformed JSON: .* \(column 7\)") as err:
        parse_line('{"a": ', bad, 3, column=True)
    assert "latin1.jsonl:3" in str(err.value)
