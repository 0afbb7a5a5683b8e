"""The artifact store: one interface over a local directory and S3, with the same key layout.

What must stay true: keys are relative, slash-separated and readable
(``runs/<run>/designs/<id>/design.json``); a put is atomic (readers see the old object or the
new one, never a torn one); the store is the source of truth for content.
"""

from genesys.store.base import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
