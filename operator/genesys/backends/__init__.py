"""Backends that execute the engine's actions: local processes, or Jobs on Kubernetes.

Both run the same TorchX AppDef for a verification and the same session command line, so a
design is trained and checked alike on one machine and on a cluster.
"""
