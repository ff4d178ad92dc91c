"""`python -m ddpm_scratch ...` runs the command line."""

import sys

from .machinery.cli import main

sys.exit(main())
