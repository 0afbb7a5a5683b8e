"""genesys_trainer: everything that imports torch (units, seed designs, checks, training, eval).

Training pods and design-check sandboxes import this package; the control plane never does at
module level. Rung presets are plain data shared with the control plane through
:mod:`genesys.api.presets`, so both sides read the same numbers.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
