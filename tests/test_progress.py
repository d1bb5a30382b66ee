"""Generation progress: an ETA from the token rate, one rewritten line on a terminal, periodic lines in a log."""

from __future__ import annotations

import pytest

from pytest_skillbench.generation import ProgressPrinter, eta_seconds, progress_line


def test_eta_counts_tokens_generated_before_any_row_finishes():
    """64 rows in flight, 10 s in, 640 tokens (10 each, 64 tok/s), nothing finished, budget 100 tokens:
    at most 64 x 100 - 640 = 5,760 tokens are left -> 90 s. A rows-finished ETA has nothing to go on."""
    eta = eta_seconds(done=0, total=64, finished_tokens=0, live_tokens=640, elapsed=10.0, max_new_tokens=100)
    assert eta == pytest.approx(90.0)


def test_eta_uses_the_mean_length_of_finished_rows():
    """20 of 100 rows done with 600 tokens (30 each); 900 tokens so far in 30 s (30 tok/s); 300 of them are in
    flight: 80 x 30 - 300 = 2,100 tokens left -> 70 s. (By rows: 30 s / 20 x 80 = 120 s.)"""
    eta = eta_seconds(done=20, total=100, finished_tokens=600, live_tokens=900, elapsed=30.0, max_new_tokens=512)
    assert eta == pytest.approx(70.0)


def test_eta_edges():
    assert eta_seconds(done=5, total=5, finished_tokens=50, live_tokens=50, elapsed=3.0, max_new_tokens=None) == 0
    assert eta_seconds(done=0, total=5, finished_tokens=0, live_tokens=0, elapsed=3.0, max_new_tokens=64) is None
    assert eta_seconds(done=0, total=5, finished_tokens=0, live_tokens=9, elapsed=3.0, max_new_tokens=None) is None
    # rows in flight already past the finished rows' mean: nothing negative
    assert eta_seconds(done=1, total=2, finished_tokens=2, live_tokens=50, elapsed=1.0, max_new_tokens=64) == 0


def test_progress_line_text():
    line = progress_line("s", done=3, total=10, tokens=120, elapsed=4.0, eta=12.4)
    assert line == "[skillbench] s: 3/10 generated, 120 tokens, 30.0 tok/s, elapsed 4s, ETA 12s"
    assert progress_line("s", done=0, total=10, tokens=0, elapsed=1.0, eta=None).endswith("ETA --")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _drive(printer: ProgressPrinter, clock: Clock) -> None:
    """10 s of decoding (a step every 0.1 s, 8 tokens per step), a row finishing every second, 10 rows."""
    printer(0, 10, 0)
    for step in range(1, 101):
        clock.t = step / 10
        printer.step(8 * step)
        if step % 10 == 0:
            printer(step // 10, 10, 8 * step)


def test_log_mode_prints_periodic_lines_and_the_last():
    lines: list[str] = []
    clock = Clock()
    p = ProgressPrinter("s", lines.append, every=2.0, max_new_tokens=100, clock=clock)
    _drive(p, clock)
    assert 5 <= len(lines) <= 7  # every 2 s over 10 s, plus the final line
    assert lines[-1].startswith("[skillbench] s: 10/10 generated, 800 tokens") and lines[-1].endswith("ETA 0s")
    assert "ETA --" not in "".join(lines[1:])  # tokens flow from the first step, so an ETA is known early


def test_terminal_mode_rewrites_one_line_and_ends_it_once():
    calls: list[tuple[str, bool]] = []
    lines: list[str] = []

    def write(line: str) -> None:
        lines.append(line)

    write.isatty = lambda: True  # type: ignore[attr-defined]
    write.rewrite = lambda line, final: calls.append((line, final))  # type: ignore[attr-defined]
    clock = Clock()
    p = ProgressPrinter("s", write, every=2.0, tty_every=0.25, max_new_tokens=100, clock=clock)
    _drive(p, clock)
    assert lines == []  # nothing printed as separate lines
    assert len(calls) > 20  # updated often, in place
    assert [final for _, final in calls].count(True) == 1 and calls[-1][1]
    assert calls[-1][0].startswith("[skillbench] s: 10/10 generated")


def test_a_writer_whose_output_is_not_a_terminal_keeps_lines():
    lines: list[str] = []

    def write(line: str) -> None:
        lines.append(line)

    write.isatty = lambda: False  # type: ignore[attr-defined]
    write.rewrite = lambda line, final: pytest.fail("rewrote a non-terminal")  # type: ignore[attr-defined]
    clock = Clock()
    _drive(ProgressPrinter("s", write, every=2.0, max_new_tokens=100, clock=clock), clock)
    assert lines and lines[-1].startswith("[skillbench] s: 10/10")
