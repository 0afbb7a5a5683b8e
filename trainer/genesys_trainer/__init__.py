"""genesys_trainer: everything that imports torch (units, seed designs, checks, training, eval).

Training pods and design-check sandboxes import this package; the control plane never does at
module level. Rung presets are plain data shared with the control plane through
:mod:`genesys.api.presets`, so both sides read the same numbers.
"""

from importlib import resources

__version__ = "0.1.0"


def interface_documentation() -> str:
    """The unit interface, as a Markdown text that prompts can include verbatim."""
    return resources.files(__name__).joinpath("docs", "UNIT_INTERFACE.md").read_text("utf-8")


__all__ = ["__version__", "interface_documentation"]
