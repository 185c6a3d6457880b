"""``python -m fuxictr_deres`` is the ``fuxictr-deres`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
