"""`python -m conformance ...` is `dispatch conformance ...`."""

from conformance.cli import main

raise SystemExit(main())
