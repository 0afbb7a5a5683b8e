"""Unit sources of the seed designs. Each file defines exactly one Unit subclass.

These files are the source of truth; ``genesys designs sync-seeds`` embeds them into the
``design.json`` files under ``seeds/designs/``, the same format that agents write.
"""
