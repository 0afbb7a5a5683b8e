"""Reading and writing YAML the way the API expects.

What must stay true:
- Loading never builds Python objects other than dicts, lists and scalars (safe loading).
- Timestamps stay strings, so pydantic (not PyYAML) parses them and sees their time zones.
- Dumping is deterministic: key order preserved, block style, no aliases, so generated files
  (the CRDs) diff cleanly and ``genesys crds --check`` compares bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type."""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never writes anchors and indents lists under their key."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def load_all(text: str) -> list[Any]:
    """Every document of a YAML stream, skipping empty ones."""
    return [doc for doc in yaml.load_all(text, Loader=_SpecLoader) if doc is not None]


def dump_all(documents: Iterable[Any]) -> str:
    """A deterministic multi-document YAML stream."""
    return yaml.dump_all(
        list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )


YAMLError = yaml.YAMLError

__all__ = ["YAMLError", "dump_all", "load_all"]
