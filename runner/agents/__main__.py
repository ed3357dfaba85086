"""`python -m runner.agents VERB ...`: the same `dispatch` parser tree (kept for scripts that used it)."""

import sys

from runner.cli import main

sys.exit(main())
