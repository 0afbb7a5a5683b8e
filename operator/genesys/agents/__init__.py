"""Design agents: proposers that turn parent designs into new candidate unit trees.

One module per concept:

- LLM design sessions: :mod:`~genesys.agents.session` (the entry point, :func:`run_llm_session`),
  :mod:`~genesys.agents.context` (settings and what the phases share),
  :mod:`~genesys.agents.proposal` (search, propose, review),
  :mod:`~genesys.agents.implementation` (the ``gau`` and ``direct`` flows),
  :mod:`~genesys.agents.session_records` (what a session writes to the store);
- the LLM layer: :mod:`~genesys.agents.llm` (client, retries, budget, reply parsing),
  :mod:`~genesys.agents.roles` (prompts and reply formats), :mod:`~genesys.agents.treeops`
  (editing unit trees with written units), :mod:`~genesys.agents.knowledge` (the searchable
  knowledge base and paper search);
- the offline proposer: :mod:`~genesys.agents.offline` (the entry point,
  :func:`run_offline_session`), :mod:`~genesys.agents.genetic_operators`,
  :mod:`~genesys.agents.change_text` (its proposal text), :mod:`~genesys.agents.offline_records`
  (what it reads and writes in the store);
- shared: :mod:`~genesys.agents.library` (the seed units as a vocabulary),
  :mod:`~genesys.agents.design_cli` (``genesys agent design``).

What must stay true: nothing in this package imports torch (it runs in the control plane and in
agent pods); design code is only ever executed by the sandbox (:mod:`genesys.sandbox`).
"""
