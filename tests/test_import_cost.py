"""The plugin costs nothing when unused: no heavy third-party import without --student/--probe.

Installing the package loads the plugin into every pytest run of the environment (and every xdist worker),
so its import must stay cheap. Checked in fresh subprocesses, since this test process has imported
everything already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("scipy", "torch", "transformers", "pandas", "matplotlib", "peft", "trl")


def _run(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=False)


def test_importing_the_plugin_imports_no_heavy_module():
    res = _run(f"import sys, pytest_skillbench.plugin; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_plain_pytest_run_with_the_plugin_imports_no_heavy_module(tmp_path):
    (tmp_path / "test_plain.py").write_text(textwrap.dedent(f"""
        import sys

        def test_nothing_heavy(pytestconfig):
            assert pytestconfig.pluginmanager.hasplugin("skillbench")
            assert sorted(m for m in {HEAVY!r} if m in sys.modules) == []
    """))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout
