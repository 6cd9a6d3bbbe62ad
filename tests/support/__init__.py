"""Helpers shared by tests in different folders, imported as `support.*` (tests/ is on the path)."""
