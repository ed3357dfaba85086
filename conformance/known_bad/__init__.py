"""conformance/known_bad."""
