"""The discovery engine: what a run does next, as pure functions of what it has observed.

- :mod:`~genesys.engine.plan`: ``plan(spec, observed, now) -> Plan``, the actions to take now
  and the run's summary; the local driver (``genesys run``) and the operator both call it.
- :mod:`~genesys.engine.guards`: the planner's rules, one small function each (give-ups, seed
  verifications, the lowest rung, promotions and the top rung's gate, design sessions).
- :mod:`~genesys.engine.phase`: the run's phase and finish reason, decided in one place.
- :mod:`~genesys.engine.state`: what the planner is shown (``Observed``) and the budget
  accounting of each rung.
- :mod:`~genesys.engine.actions`: the actions the backends execute.

What must stay true: this package performs no I/O of its own, reads no clock and never imports
kubernetes, boto3, torch or the trainer (an import-linter contract in ``pyproject.toml``
enforces it); backends execute the actions it returns.
"""
