"""``python -m pytest_skillbench.training ARGS`` (= ``skillbench train ARGS``; also
``accelerate launch -m pytest_skillbench.training ARGS``).

The repository folder ``training/`` is installed as ``pytest_skillbench.training`` (setuptools package-dir),
so no generic top-level ``training`` package lands in site-packages.
"""

import sys

from .train import main

if __name__ == "__main__":
    sys.exit(main())
