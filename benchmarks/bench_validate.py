"""Spec validation throughput, as a ratio to YAML parsing of the same documents.

The operator validates every DiscoveryRun on every reconcile, so validation must stay a small
multiple of the cost of merely reading the YAML. Prints documents/s and the ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from genesys.api.validation import parse_discovery_run
from genesys.api.yamlio import load_all

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def per_second(task: Callable[[], object], *, seconds: float = 1.0) -> float:
    """Calls per second of ``task``, measured for about ``seconds``."""
    task()  # warm up caches
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        task()
        calls += 1
    return calls / elapsed


def main() -> None:
    texts = [path.read_text(encoding="utf-8") for path in EXAMPLES]
    documents = [doc for text in texts for doc in load_all(text)]

    def parse_yaml() -> None:
        for text in texts:
            load_all(text)

    def validate() -> None:
        for document in documents:
            parse_discovery_run(document)

    baseline = per_second(parse_yaml)
    measured = per_second(validate)
    print(f"yaml parse (baseline): {baseline * len(texts):10.0f} documents/s")
    print(f"validate             : {measured * len(documents):10.0f} documents/s")
    print(f"validate / parse speed ratio: {measured / baseline:.2f}x (higher is better)")


if __name__ == "__main__":
    main()
