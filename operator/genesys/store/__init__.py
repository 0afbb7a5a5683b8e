"""The artifact store: one interface over a local directory and S3, with the same key layout.

What must stay true: keys are relative, slash-separated and readable
(``runs/<run>/designs/<id>/design.json``); a put is atomic (readers see the old object or the
new one, never a torn one); ``create_*`` writes only a missing key, exclusively across writers;
``list`` and ``delete_prefix`` work on folders (``runs/demo`` never includes ``runs/demo-2``);
the store is the source of truth for content. ``genesys.store.base`` states the whole contract.
A training job holds no store credential: it reaches its own objects through a store grant of
presigned URLs (``genesys.store.grant``), which ``open_store`` uses where the job's environment
carries one.
"""

from genesys.store.base import ConditionalWriteUnsupportedError, Store, StoreError, open_store

__all__ = ["ConditionalWriteUnsupportedError", "Store", "StoreError", "open_store"]
