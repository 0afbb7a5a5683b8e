"""genesys-operator's control plane: API models, evolution, agents, engine and controller.

Import rule: nothing at this package's top level imports torch, kubernetes or boto3, so that
`import genesys` stays cheap in every process (CLI, operator, agent sandbox parent).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
