"""`python -m runner.agents VERB ...`: the agent verbs without the runner's CLI wiring."""

import sys

from runner.agents.cli import main

sys.exit(main())
