"""`python -m pos_exports.cli`: the same as `pos-exports`."""

import sys

from pos_exports.cli import main

sys.exit(main())
