"""Fixtures shared by the unit tests' modules."""

from tests.harness import h  # noqa: F401  (the delivery harness over the in-process sandbox)
