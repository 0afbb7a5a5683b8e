"""Design agents: proposers that turn parent designs into new candidate unit trees.

What must stay true: nothing in this package imports torch (it runs in the control plane and in
agent pods); design code is only ever executed by the sandbox (:mod:`genesys.sandbox`).
"""
