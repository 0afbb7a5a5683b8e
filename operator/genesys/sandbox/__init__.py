"""Running untrusted design code outside the control-plane process.

What must stay true: design code never runs in the operator, agent or CLI process. It runs in a
child process whose environment holds no credentials (:func:`scrubbed_env`); the full sandbox
(rlimits, timeout, import allow-list, structured report) builds on this module.
"""

from genesys.sandbox.env import SECRET_MARKERS, scrubbed_env

__all__ = ["SECRET_MARKERS", "scrubbed_env"]
