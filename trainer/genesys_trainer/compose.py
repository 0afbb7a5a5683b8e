"""Composing a unit tree from source strings into a block module.

Each design is compiled into its own module namespace, and each unit into its own submodule
of it, so two units may define helpers of the same name and many designs can live in one
process without collisions. Nothing is written to disk; the modules are registered in
``sys.modules`` under unique, never-reused names (``genesys_design_<name>_<n>.<Unit>``), because
``torch.compile`` re-imports the modules of the functions it traces.

What must stay true:
- Composition executes design code: call it only where untrusted code may run (the sandbox's
  child process, a training pod, or tests of trusted seeds). The operator never imports this.
- Every error names the unit it comes from (:class:`~genesys_trainer.tree.DesignError`).
- A unit's declared ``CHILDREN`` and the tree's ``children`` bindings must match exactly.
"""

from __future__ import annotations

import builtins
import itertools
import re
import sys
import types
from dataclasses import dataclass
from typing import Any

from genesys_trainer.tree import DesignError, UnitTree, unit_class_names, validate_tree
from genesys_trainer.units import Unit, UnitError, placeholder_for

_design_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class _Factory:
    """Creates one unit class with its tree hyper-parameters and the parent's context."""

    design: str
    unit: str
    cls: type[Unit]
    hyperparameters: dict[str, Any]

    def __call__(self, **context: Any) -> Unit:
        try:
            return self.cls(**context, **self.hyperparameters)
        except (DesignError, UnitError):
            raise
        except Exception as exc:  # the unit's own __init__ failed: report it by unit
            raise DesignError(
                f"{type(exc).__name__} in __init__: {exc}", design=self.design, unit=self.unit
            ) from exc


@dataclass(frozen=True, slots=True)
class ComposedDesign:
    """A design compiled into classes, ready to build blocks."""

    tree: UnitTree
    module: types.ModuleType
    classes: dict[str, type[Unit]]

    @property
    def root_class(self) -> type[Unit]:
        """The class of the block (the tree's root unit)."""
        return self.classes[self.tree.root]

    def block(
        self, d_model: int, *, n_head: int = 1, layer_index: int = 0, n_layer: int = 1
    ) -> Unit:
        """One block instance with the given context."""
        factory = _Factory(
            self.tree.name,
            self.tree.root,
            self.root_class,
            self.tree.units[self.tree.root].hyperparameters,
        )
        return factory(d_model=d_model, n_head=n_head, layer_index=layer_index, n_layer=n_layer)


def _module_name(design: str) -> str:
    safe = re.sub(r"\W", "_", design) or "design"
    return f"genesys_design_{safe}_{next(_design_counter)}"


def _compile_unit(tree: UnitTree, name: str, module_name: str) -> type[Unit]:
    source = tree.units[name].source
    classes = unit_class_names(source, design=tree.name, unit=name)
    if classes != [name]:
        raise DesignError(
            f"source must define exactly one Unit subclass named {name!r}, found {classes}",
            design=tree.name,
            unit=name,
        )
    unit_module = types.ModuleType(f"{module_name}.{name}", f"Unit {name!r} of {tree.name!r}")
    namespace: dict[str, Any] = unit_module.__dict__
    namespace["__builtins__"] = builtins
    # Registered under a unique name so tools that re-import a function's module (torch.compile's
    # dynamo, pickle by reference) find it; the name holds a per-process counter, never reused.
    sys.modules[unit_module.__name__] = unit_module
    try:
        code = compile(source, f"<design {tree.name} unit {name}>", "exec")
        exec(code, namespace)
    except SyntaxError as exc:
        raise DesignError(
            f"syntax error at line {exc.lineno}: {exc.msg}", design=tree.name, unit=name
        ) from None
    except Exception as exc:
        raise DesignError(
            f"{type(exc).__name__} while loading: {exc}", design=tree.name, unit=name
        ) from exc
    cls = namespace.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Unit)):
        raise DesignError(
            "does not subclass genesys_trainer.units.Unit", design=tree.name, unit=name
        )
    return cls


def compose(tree: UnitTree) -> ComposedDesign:
    """Compile every unit of the tree and bind each declared child to its implementation."""
    validate_tree(tree)
    module = types.ModuleType(_module_name(tree.name), f"Design {tree.name!r}")
    module.__path__ = []  # a package, so its units import as submodules
    sys.modules[module.__name__] = module
    classes: dict[str, type[Unit]] = {
        name: placeholder_for(name, tuple(decl.outputs)) for name, decl in tree.declarations.items()
    }
    for name in tree.units:
        classes[name] = _compile_unit(tree, name, module.__name__)
        setattr(module, name, classes[name])
    for name, spec in tree.units.items():
        cls = classes[name]
        declared = [child.name for child in cls.CHILDREN]
        unbound = [slot for slot in declared if slot not in spec.children]
        undeclared = [slot for slot in spec.children if slot not in declared]
        if unbound:
            raise DesignError(
                f"declares children {unbound} that the tree does not bind",
                design=tree.name,
                unit=name,
            )
        if undeclared:
            raise DesignError(
                f"the tree binds children {undeclared} that the unit's CHILDREN does not "
                f"declare (declared: {declared})",
                design=tree.name,
                unit=name,
            )
        cls.BINDINGS = {
            slot: _Factory(
                tree.name,
                child,
                classes[child],
                tree.units[child].hyperparameters if child in tree.units else {},
            )
            for slot, child in spec.children.items()
        }
    return ComposedDesign(tree, module, classes)


__all__ = ["ComposedDesign", "compose"]
