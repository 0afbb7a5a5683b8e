"""Dynamic design checks, and the sandbox child that runs them on untrusted code.

The checks: forward, the design's own unit tests, causality, batch independence, gradients,
complexity, effectiveness and parameter fit. The static checks live in
:mod:`genesys.sandbox.static`.
"""
