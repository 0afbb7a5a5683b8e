"""``genesys designs ...``: list the seeds, show a unit tree, fit a design to a rung.

The ``genesys`` command runs this module in a child process (``python -m
genesys_trainer.designs_cli``) with a scrubbed environment, because ``params`` composes design
code, and design code never runs inside the control-plane process.

Subcommands:
- ``list [--json]``: the seed designs;
- ``show NAME|FILE``: the unit tree as text;
- ``params NAME|FILE|--all --rung R [--vocab N] [--tolerance F] [--json]``: the fitted shape,
  the parameter count and the relative error to the rung's reference;
- ``sync-seeds [--check]``: regenerate (or check) the seeds' shipped ``design.json`` files.

Exit codes: 0 ok; 1 a design does not fit or seed files are stale; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from genesys.api.presets import SCALE_PRESETS
from genesys_trainer.seeds import SEEDS, load_seed, seed_json_text
from genesys_trainer.tree import DesignError, UnitTree, load_tree

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def resolve_design(name_or_file: str) -> UnitTree:
    """A seed by name, or a ``design.json`` / block ``.py`` file by path."""
    if name_or_file in SEEDS:
        return load_seed(name_or_file)
    path = Path(name_or_file)
    if not path.exists():
        raise DesignError(
            f"{name_or_file!r} is neither a seed ({', '.join(SEEDS)}) nor an existing file"
        )
    return load_tree(path)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the seed designs."""
    rows = []
    for name in SEEDS:
        tree = load_seed(name)
        rows.append(
            {
                "name": name,
                "title": tree.metadata.get("title", ""),
                "units": sorted(tree.units),
                "citation": tree.metadata.get("citation", ""),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<8} {row['title']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Print a unit tree."""
    print(resolve_design(args.design).render())
    return EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    """Fit designs to a rung and report shape, parameters and error."""
    from genesys_trainer.compose import compose  # imports torch; only here
    from genesys_trainer.fit import fit_design

    if args.rung not in SCALE_PRESETS:
        print(
            f"unknown rung {args.rung!r}; expected one of {', '.join(SCALE_PRESETS)}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    preset = SCALE_PRESETS[args.rung]
    vocab = args.vocab or (256 if preset.cpu_sized else 32000)
    names = list(SEEDS) if args.all else [args.design]
    results = []
    for name in names:
        tree = resolve_design(name)
        results.append(
            fit_design(
                compose(tree), preset, rung=args.rung, vocab_size=vocab, tolerance=args.tolerance
            )
        )
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print(f"rung {args.rung}: reference {results[0].reference:,} params at vocab {vocab}")
        print(f"{'design':<10}{'n_embd':>8}{'n_layer':>9}{'n_head':>8}{'params':>14}{'error':>9}")
        for r in results:
            flag = "" if r.within else f"  outside ±{r.tolerance:.0%}"
            print(
                f"{r.design:<10}{r.n_embd:>8}{r.n_layer:>9}{r.n_head:>8}{r.params:>14,}"
                f"{r.rel_error:>+9.1%}{flag}"
            )
    return EXIT_OK if all(r.within for r in results) else EXIT_FAILED


def seeds_dir() -> Path:
    """The folder of the shipped seed ``design.json`` files."""
    return Path(str(resources.files("genesys_trainer.seeds").joinpath("designs")))


def cmd_sync_seeds(args: argparse.Namespace) -> int:
    """Regenerate the seeds' design.json from the unit sources, or check them."""
    folder = seeds_dir()
    stale = []
    for name in SEEDS:
        path = folder / f"{name}.json"
        text = seed_json_text(name)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            stale.append(name)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(
            f"stale seed designs: {', '.join(stale)}; run `genesys designs sync-seeds`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    state = f"rewrote {', '.join(stale)}" if stale and not args.check else "current"
    print(f"seed designs in {folder}: {state}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``genesys designs``."""
    parser = argparse.ArgumentParser(prog="genesys designs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list the seed designs")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)
    show = commands.add_parser("show", help="print a design's unit tree")
    show.add_argument("design", metavar="NAME|FILE")
    show.set_defaults(handler=cmd_show)
    params = commands.add_parser("params", help="fit designs to a rung and count parameters")
    target = params.add_mutually_exclusive_group(required=True)
    target.add_argument("design", nargs="?", metavar="NAME|FILE")
    target.add_argument("--all", action="store_true", help="every seed design")
    params.add_argument("--rung", required=True, help=f"one of {', '.join(SCALE_PRESETS)}")
    params.add_argument(
        "--vocab", type=int, default=None, help="vocabulary size (default 32000; 256 for CPU rungs)"
    )
    params.add_argument("--tolerance", type=float, default=0.2, help="allowed relative error")
    params.add_argument("--json", action="store_true", help="print JSON")
    params.set_defaults(handler=cmd_params)
    sync = commands.add_parser("sync-seeds", help="regenerate the seeds' design.json files")
    sync.add_argument("--check", action="store_true", help="exit 1 when stale; write nothing")
    sync.set_defaults(handler=cmd_sync_seeds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``python -m genesys_trainer.designs_cli``)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except DesignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return code


if __name__ == "__main__":
    sys.exit(main())
