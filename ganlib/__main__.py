"""`python -m ganlib ...` runs the command line in ganlib.cli."""

import sys

from ganlib.cli import main

sys.exit(main())
