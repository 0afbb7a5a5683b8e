"""The discovery engine: a pure ``plan(spec, observed, now) -> actions`` and the local driver.

What must stay true: this package performs no I/O of its own and never imports kubernetes, boto3
or torch (an import-linter contract in ``pyproject.toml`` enforces it). Backends execute the
actions it returns. The planner itself lands with the evolution-engine issue; the package exists
now so that the import contract guards it from the first commit.
"""
