"""Import cost of the plugin: what every pytest run in an environment with the package installed pays.

    python benchmarks/plugin_import_time.py [--reps 7] [--json]

Runs ``python -X importtime -c "import pytest_skillbench.plugin"`` in fresh interpreters and prints the
median cumulative import time of ``pytest_skillbench.plugin`` (which includes importing pytest itself),
the share of it that is pytest, and which heavy third-party modules were imported (there should be none).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, median

HEAVY = ("scipy", "torch", "transformers", "pandas", "matplotlib", "peft", "trl", "numpy")


def cumulative_us(stderr: str) -> dict[str, int]:
    """Module -> cumulative microseconds, from ``-X importtime`` output (top-level entries win)."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            cum = int(parts[1])
        except ValueError:
            continue  # the header line
        name = parts[2].strip()
        out[name] = max(out.get(name, 0), cum)
    return out


def one() -> dict:
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest_skillbench.plugin"],
                         capture_output=True, text=True, check=True)
    cum = cumulative_us(res.stderr)
    return {"plugin_s": cum["pytest_skillbench.plugin"] / 1e6, "pytest_s": cum.get("pytest", 0) / 1e6,
            "heavy": sorted(m for m in HEAVY if m in cum)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = [one() for _ in range(args.reps)]
    plugin_s = median([r["plugin_s"] for r in runs])
    pytest_s = median([r["pytest_s"] for r in runs])
    heavy = sorted({m for r in runs for m in r["heavy"]})
    rows = [{"what": "import pytest_skillbench.plugin (cumulative)", "median_s": plugin_s},
            {"what": "  of which pytest", "median_s": pytest_s},
            {"what": "  of which the plugin's own modules", "median_s": plugin_s - pytest_s}]
    emit("Plugin import time", rows, ["what", "median_s"], args.json,
         extra={"reps": args.reps, "heavy modules imported": heavy or "none", "goal": "< 0.3 s"})


if __name__ == "__main__":
    main()
