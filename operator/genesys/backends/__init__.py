"""Backends that execute the engine's actions: local processes (and, later, Kubernetes)."""
