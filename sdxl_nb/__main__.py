"""`python -m sdxl_nb` runs the CLI."""

import sys

from sdxl_nb.cli import main

sys.exit(main())
