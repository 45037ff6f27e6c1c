"""`python -m mlopslab` is the `mlopslab` command."""

import sys

from mlopslab.cli import main

sys.exit(main())
