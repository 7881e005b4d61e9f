"""`python -m stylegan2_lib ...` runs the command line (same as the `stylegan2-lib` script)."""

import sys

from .cli import main

sys.exit(main())
