"""FuxiCTR-style entry point: python run_expid.py --config benchmark_configs/ --expid DeRes_criteo [--gpu N]

Works from any directory (no os.chdir): relative paths in the configs resolve against the config directory.
"""

import os
import sys

if __name__ == "__main__":
    try:
        import fuxictr_deres  # noqa: F401  (installed with pip install -e .)
    except ImportError:  # running from a checkout that is not installed
        sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    from fuxictr_deres.commands.run import main
    sys.exit(main())
