"""The names of the seed designs every run starts from (Genesys, "Seed designs").

What must stay true: this is the only list of seed names. The engine records the seeds as
``seed-<name>`` in this order (a seed's ``seq`` is its index here), and the trainer's
:mod:`genesys_trainer.seeds` ships one unit tree and one ``designs/<name>.json`` per name, in the
same order (``tests/unit/test_seeds_names.py`` checks both). It stays pure: no imports at all.
"""

SEED_NAMES: tuple[str, ...] = ("gpt2", "mamba2", "retnet", "rwkv6", "ttt")

__all__ = ["SEED_NAMES"]
