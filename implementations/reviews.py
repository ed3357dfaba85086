"""The hand review of every failure a peer shows in the matrix, read against the peer's installed source.

Key: (implementation, check id). Value: (finding, one line). Findings: ``peer defect`` (the peer really
does this wrong; the line says where in its code), ``adapter mistake`` (fixed in the adapter; kept
here only while a re-run is pending), ``wrong verdict`` (the suite blames the wrong thing; reported to
the check owners), ``not applicable`` (the peer has no such notion and the check says so correctly).
docs/implementations.md shows each failure with its review; an unreviewed one says so.
"""

from __future__ import annotations

REVIEWS: dict[tuple[str, str], tuple[str, str]] = {}
