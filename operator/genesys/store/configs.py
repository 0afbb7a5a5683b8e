"""Run configs in the store: written once under their digest, read back by URI.

A run's resolved config (:class:`~genesys.api.runconfig.RunConfig`) is stored at
``config/<digest>.json`` in the run's own store. Its key is a hash of its content, so it is
never rewritten: a changed spec gives a new config under a new key, and every Job keeps the URI
of the config it was started with.

What must stay true: a config whose content no longer matches its name is refused, so a Job
never runs with inputs other than the ones its URI names.
"""

from __future__ import annotations

from genesys.api.runconfig import RunConfig, config_digest, config_json
from genesys.store.base import Store, open_store
from genesys.store.documents import parse_document


def config_key(config: RunConfig) -> str:
    """Where a run config is stored (named by its digest, so never rewritten)."""
    return f"config/{config_digest(config)}.json"


def write_run_config(store: Store, config: RunConfig) -> str:
    """Store a config in a run's store (once); its URI."""
    key = config_key(config)
    store.create_text(key, config_json(config))  # an existing one is this one: same digest
    return f"{store.uri.rstrip('/')}/{key}"


def read_run_config(uri: str) -> RunConfig:
    """The run config at a store URI or path; ValueError when missing, invalid or altered."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    try:
        data = open_store(parent or ".").get_bytes(name)
    except KeyError:
        raise ValueError(f"no run config at {uri}") from None
    config = parse_document(uri, data, RunConfig)
    digest = config_digest(config)
    if name.removesuffix(".json") != digest:
        raise ValueError(f"the run config {uri} does not match its digest ({digest})")
    return config


__all__ = ["config_key", "read_run_config", "write_run_config"]
