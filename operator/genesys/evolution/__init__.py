"""Evolution as pure functions.

Ranking (Massey), confidence, quadrant selection, operator choice and the ladder of scales.

What must stay true: nothing here performs I/O or reads the clock; every random choice takes a
``random.Random`` seeded by the caller from the run's seed, so a plan is reproducible.
"""
