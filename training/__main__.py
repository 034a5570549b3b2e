"""``python -m training [train|evaluate] [options]`` (no sub-command: train)."""

import sys

from ._cli import module_main

if __name__ == "__main__":
    sys.exit(module_main())
