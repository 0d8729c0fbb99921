"""`python -m sparsemod_dsl.cli`: run `sparsemodc`."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
