"""Entry point of `python -m pipeline` (the same as the `pipeline` command)."""

from __future__ import annotations

import sys

from pipeline.cli import main

sys.exit(main())
