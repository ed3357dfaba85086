"""`python -m containers ...`."""

import sys

from containers.cli import main

sys.exit(main())
