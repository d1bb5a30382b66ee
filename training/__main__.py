"""``python -m training ARGS`` (= ``skillbench train ARGS``; also ``accelerate launch -m training ARGS``)."""

import sys

from .train import main

if __name__ == "__main__":
    sys.exit(main())
