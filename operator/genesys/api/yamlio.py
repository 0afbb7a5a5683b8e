"""Reading and writing YAML the way the API expects.

What must stay true:
- Loading never builds Python objects other than dicts, lists and scalars (safe loading).
- Timestamps stay strings, so pydantic (not PyYAML) parses them and sees their time zones.
- Loading composes the node graph first and checks it before building any Python object: it
  refuses a document of more than ``MAX_EXPANDED_NODES`` nodes once its aliases are expanded
  (an alias bomb, "billion laughs"), an alias inside the node it refers to, and a mapping that
  repeats a key (kubectl does too; PyYAML would keep the last value). Composing stops once a
  document has written out that many nodes, and the expanded count is memoised per node, so
  the work done is bounded by the cap, never by what the aliases expand to.
- A spec file (``load_spec_bytes``) is at most ``MAX_SPEC_BYTES``, strictly UTF-8 (a leading
  UTF-8 BOM is dropped) and holds exactly one non-empty document. Every refusal is a
  ``SpecFileError``, whose ``str()`` is one line, ``source: message``; callers print it as is.
- Dumping is deterministic: key order preserved, block style, no aliases, so generated files
  (the CRDs) diff cleanly and ``genesys crds --check`` compares bytes.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

MAX_SPEC_BYTES = 1 << 20
"""Largest spec file read: 1 MiB (the API server refuses objects over about 1.5 MB anyway)."""

MAX_EXPANDED_NODES = 20_000
"""Most YAML nodes in one document, counting each alias as all the nodes it stands for.

The examples hold 103 and 177. PyYAML composes about 30,000 nodes a second, so refusing a file
never takes more than about a second.
"""

_TOO_MANY_NODES = (
    f"too many YAML nodes: more than {MAX_EXPANDED_NODES}, counting each alias as all the nodes "
    "it stands for"
)

YAMLError = yaml.YAMLError

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class SpecFileError(YAMLError, ValueError):
    """YAML that cannot be loaded as a spec; ``str()`` is one line, ``source: message``."""

    def __init__(self, message: str, *, source: str = "") -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type, composing a bounded number of nodes.

    Composing costs tens of microseconds a node, so a document that writes out more nodes
    than ``MAX_EXPANDED_NODES`` (aliases included) is refused as soon as it gets there.
    """

    nodes_composed = 0  # in the current document, each alias counted as one

    def compose_document(self) -> yaml.Node | None:
        self.nodes_composed = 0
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.nodes_composed += 1
        if self.nodes_composed > MAX_EXPANDED_NODES:
            raise SpecFileError(_TOO_MANY_NODES)
        return super().compose_node(parent, index)


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


# ------------------------------------------------------------------------------------- checks


def _where(mark: yaml.Mark | None) -> str:
    """``line L, column C`` (both from 1) of a position in the stream."""
    return "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"


def _describe(exc: yaml.YAMLError) -> str:
    """One line for a PyYAML error: where, what, and what it was in the middle of."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        text = f"{_where(exc.problem_mark)}: invalid YAML: {exc.problem or exc.context}"
        if exc.problem and exc.context:
            line = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            text += f" ({exc.context}{line})"
        return text
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"invalid YAML: unacceptable character #x{exc.character:04x} at character "
            f"{exc.position}: {exc.reason}"
        )
    return "invalid YAML: " + " ".join(str(exc).split())


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly under ``node``: a mapping's keys and values, a sequence's items."""
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node, cap: int) -> int:
    """Nodes in ``root`` once every alias is expanded, counting saturated at ``cap + 1``.

    Each distinct node is counted once (aliases share the node they refer to), so a chain of
    aliases that would expand to billions of nodes costs one visit per node in the file.
    Raises SpecFileError where an alias sits inside the node it refers to.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # being counted: their descendants are on the stack
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        if children_counted:
            open_nodes.discard(id(node))
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[id(node)] = min(total, cap + 1)
        elif id(node) in open_nodes:
            raise SpecFileError(
                f"{_where(node.start_mark)}: recursive alias: the node anchored here contains "
                "an alias to itself"
            )
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def _distinct_nodes(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every node reachable from ``root``, each once however many aliases refer to it."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            yield node
            stack.extend(_children(node))


def _duplicate_keys(mapping: yaml.MappingNode, loader: _SpecLoader) -> Iterator[tuple[int, str]]:
    """(offset, ``where: duplicate key K (first on line L)``) for each repeated key of a mapping.

    Keys compare as the values they load as (so ``1`` and ``01`` are the same key); merge
    keys (``<<``) and complex keys are left to the constructor.
    """
    first: dict[Any, yaml.Node] = {}
    for key, _ in mapping.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        value = loader.construct_object(key)
        if value in first:
            line = first[value].start_mark.line + 1
            message = f"{_where(key.start_mark)}: duplicate key {value!r} (first on line {line})"
            yield key.start_mark.index, message
        else:
            first[value] = key


def _check(root: yaml.Node, loader: _SpecLoader) -> None:
    """Raise SpecFileError for an alias bomb, a recursive alias or a repeated key.

    The expanded size is checked first, so nothing after it walks more than the file holds.
    """
    if _expanded_size(root, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
        raise SpecFileError(_TOO_MANY_NODES)
    mappings = (n for n in _distinct_nodes(root) if isinstance(n, yaml.MappingNode))
    duplicates = [found for m in mappings for found in _duplicate_keys(m, loader)]
    if duplicates:
        raise SpecFileError(min(duplicates)[1])  # the first in the file


# ------------------------------------------------------------------------------------ loading


def _compose_all(text: str) -> list[yaml.Node]:
    """The node graph of every non-empty document; builds no Python object."""
    loader = _SpecLoader(text)
    try:
        nodes: list[yaml.Node] = []
        while loader.check_node():
            node = loader.get_node()
            empty = node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG)
            if node is not None and not empty:
                nodes.append(node)
        return nodes
    except RecursionError:
        raise SpecFileError("invalid YAML: nested too deeply to read") from None
    finally:
        loader.dispose()


def _construct(root: yaml.Node) -> Any:
    """The dicts, lists and scalars of one composed document, once it passes ``_check``."""
    loader = _SpecLoader("")
    try:
        _check(root, loader)
        return loader.construct_document(root)
    except RecursionError:
        raise SpecFileError("invalid YAML: nested too deeply to read") from None
    finally:
        loader.dispose()


def _decode(data: bytes) -> str:
    """Strict UTF-8 text, without a leading BOM; SpecFileError says where it is not UTF-8."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise SpecFileError(
            f"not UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} (line {line}); "
            "a spec file must be UTF-8"
        ) from None


def _load_spec(data: bytes) -> Any:
    """``load_spec_bytes`` without the source: size, encoding, document count, then checks."""
    if len(data) > MAX_SPEC_BYTES:
        raise SpecFileError(
            f"larger than {MAX_SPEC_BYTES} bytes ({MAX_SPEC_BYTES >> 20} MiB), "
            "the limit for a spec file"
        )
    documents = _compose_all(_decode(data))
    if len(documents) != 1:
        raise SpecFileError(f"expected one document per file, found {len(documents) or 'none'}")
    return _construct(documents[0])


def load_spec_bytes(data: bytes, *, source: str) -> Any:
    """The one document of a spec file, from its bytes.

    Raises SpecFileError, one line naming ``source``, when the file is too large, not UTF-8,
    not YAML, an alias bomb, repeats a key, or holds other than one non-empty document.
    """
    try:
        return _load_spec(data)
    except SpecFileError as exc:
        raise SpecFileError(exc.message, source=source) from None
    except yaml.YAMLError as exc:
        raise SpecFileError(_describe(exc), source=source) from None


def load_all(text: str) -> list[Any]:
    """Every document of a YAML stream, skipping empty ones.

    Raises yaml.YAMLError: PyYAML's own, or a SpecFileError for a repeated key, a recursive
    alias or an alias bomb.
    """
    return [_construct(node) for node in _compose_all(text)]


def dump_all(documents: Iterable[Any]) -> str:
    """A deterministic multi-document YAML stream."""
    return yaml.dump_all(
        list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )


__all__ = [
    "MAX_EXPANDED_NODES",
    "MAX_SPEC_BYTES",
    "SpecFileError",
    "YAMLError",
    "dump_all",
    "load_all",
    "load_spec_bytes",
]
