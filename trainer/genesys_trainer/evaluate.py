"""Evaluation with lm-evaluation-harness: our LM as a registered model type, local task files.

- :class:`GenesysLM` implements lm-eval's ``LM`` interface (``loglikelihood``,
  ``loglikelihood_rolling``, ``generate_until``) over a :class:`~genesys_trainer.model.
  LanguageModel` and a tokenizer, in length-sorted batches. It is registered as ``genesys``.
- Local tasks: the JSONL items written by ``genesys data prepare`` (``tasks/*.jsonl``) become
  multiple-choice task YAMLs in a temporary include directory, evaluated fully offline.
- Cluster runs pass the standard lm-eval task names of the paper instead.

Each accuracy comes with its standard error over the items (``acc_stderr``,
``acc_norm_stderr``: sqrt(p (1 - p) / (n - 1)) over the task's n items, lm-eval's closed form
for a mean of 0/1 scores; no bootstrap is run). Selection uses it to tell differences of a few
items from real ones (:mod:`genesys.evolution.ranking`). Choices with one-token answers and a
shared context are scored from one forward pass (:meth:`GenesysLM._rows`).

What must stay true: metrics keep lm-eval's names (``acc``, ``acc_norm``, ``acc_stderr``, ...),
keyed by task; evaluation never downloads anything for local tasks (``HF_DATASETS_OFFLINE=1``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from genesys_trainer.data.tokenizer import Tokenizer
from genesys_trainer.model import LanguageModel

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lm_eval.api.model import LM  # after the offline switches
from lm_eval.api.registry import register_model

TASK_TEMPLATE = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
target_delimiter: "{delimiter}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
# The synthetic tasks continue the context directly; the text tasks after a space.
DELIMITERS = {"genesys_cloze": " ", "genesys_wordnet": " "}


@register_model("genesys")
class GenesysLM(LM):  # type: ignore[misc]
    """lm-eval's LM interface over a genesys LanguageModel."""

    def __init__(
        self,
        model: LanguageModel,
        tokenizer: Tokenizer,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.tok = tokenizer
        self.batch_size = batch_size
        self._device = torch.device(device)
        self.max_length = model.config.block_size

    @property
    def tokenizer_name(self) -> str:
        """The tokenizer's name (for lm-eval's caches)."""
        return self.tok.name

    def _rows(
        self, pairs: Sequence[tuple[list[int], list[int]]]
    ) -> list[tuple[list[int], list[tuple[int, int, int]]]]:
        """Model inputs, each with the (request, first, last) spans of its logits it scores.

        A request's input is its context and continuation, minus the last token, cut to the
        context length from the left. Requests with one-token continuations and the same
        context share one input: the log-probabilities at its last position score every
        choice of a multiple-choice item at once (what lm-eval asks for its synthetic tasks,
        whose answers are single characters), instead of one forward pass per choice.
        """
        rows: list[tuple[list[int], list[tuple[int, int, int]]]] = []
        shared: dict[tuple[int, ...], int] = {}
        for index, (context, continuation) in enumerate(pairs):
            inputs = (context + continuation)[-(self.max_length + 1) :][:-1]
            span = (index, len(inputs) - len(continuation), len(inputs))
            if len(continuation) != 1:
                rows.append((inputs, [span]))
                continue
            row = shared.setdefault(tuple(inputs), len(rows))
            if row == len(rows):
                rows.append((inputs, []))
            rows[row][1].append(span)
        return rows

    def _score(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Log-probability of each continuation given its context, and greediness."""
        rows = self._rows(pairs)
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r][0]))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            chunk = [rows[r] for r in order[start : start + self.batch_size]]
            width = max(len(inputs) for inputs, _ in chunk)
            batch = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, (inputs, _) in enumerate(chunk):
                batch[i, : len(inputs)] = torch.tensor(inputs)
            with torch.no_grad():
                logits, _ = self.model(batch.to(self._device))
                logprobs = F.log_softmax(logits.float(), dim=-1).cpu()
            for i, (_, spans) in enumerate(chunk):
                for index, first, last in spans:
                    target = torch.tensor(pairs[index][1])
                    picked = logprobs[i, first:last].gather(-1, target[:, None]).squeeze(-1)
                    greedy = bool((logprobs[i, first:last].argmax(-1) == target).all())
                    results[index] = (float(picked.sum()), greedy)
        return results

    def loglikelihood(self, requests: Iterable[Any]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), is greedy) per request."""
        pairs = []
        for request in requests:
            context, continuation = request.args
            ids = self.tok.encode(continuation)
            pairs.append((self.tok.encode(context) or [self.tok.eot], ids or [self.tok.eot]))
        return self._score(pairs)

    def loglikelihood_rolling(self, requests: Iterable[Any]) -> list[float]:
        """Total log-probability of each text, in windows of the context length."""
        totals = []
        for request in requests:
            ids = self.tok.encode(request.args[0])
            pairs, position = [], 0
            while position < len(ids):
                window = ids[position : position + self.max_length]
                context = ids[max(0, position - self.max_length) : position] or [self.tok.eot]
                pairs.append((context, window))
                position += len(window)
            totals.append(sum(score for score, _ in self._score(pairs)))
        return totals

    def generate_until(self, requests: Iterable[Any]) -> list[str]:
        """Greedy generation until a stop string or the token budget."""
        outputs = []
        for request in requests:
            context, kwargs = request.args
            stops = kwargs.get("until", []) or []
            budget = int(kwargs.get("max_gen_toks", 64))
            ids = self.tok.encode(context) or [self.tok.eot]
            generated: list[int] = []
            for _ in range(budget):
                window = (ids + generated)[-self.max_length :]
                with torch.no_grad():
                    logits, _ = self.model(torch.tensor([window], device=self._device))
                generated.append(int(logits[0, -1].argmax()))
                text = self.tok.decode(generated)
                if any(stop in text for stop in stops):
                    break
            text = self.tok.decode(generated)
            for stop in stops:
                text = text.split(stop)[0]
            outputs.append(text)
        return outputs


def write_task_configs(data_dir: Path, tasks: Sequence[str], directory: Path) -> list[str]:
    """YAML task configs for the local JSONL items; the task names that exist."""
    names = []
    for name in tasks:
        path = (data_dir / "tasks" / f"{name}.jsonl").resolve()
        if not path.exists():
            continue
        text = TASK_TEMPLATE.format(
            name=name, path=json.dumps(str(path)), delimiter=DELIMITERS.get(name, "")
        )
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
        names.append(name)
    return names


def local_task_names(data_dir: Path) -> list[str]:
    """The local tasks a prepared data directory holds."""
    return sorted(p.stem for p in (data_dir / "tasks").glob("*.jsonl"))


def evaluate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    *,
    data_dir: Path | None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """Metrics per task, in lm-eval's naming. Local tasks by default."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm = GenesysLM(model, tokenizer, batch_size=batch_size, device=device)
    with tempfile.TemporaryDirectory(prefix="genesys-tasks-") as include:
        if data_dir is not None and (tasks is None or all(t.startswith("genesys_") for t in tasks)):
            wanted = tasks or local_task_names(data_dir)
            names = write_task_configs(data_dir, wanted, Path(include))
            manager = TaskManager(include_path=include, include_defaults=False)
        else:
            names = list(tasks or [])
            manager = TaskManager()
        if not names:
            return {}
        results = simple_evaluate(
            model=lm,
            tasks=names,
            task_manager=manager,
            limit=limit,
            log_samples=False,
            bootstrap_iters=0,
        )
    metrics: dict[str, dict[str, float]] = {}
    for task, values in (results or {}).get("results", {}).items():
        clean = {}
        for key, value in values.items():
            metric, _, _filter = str(key).partition(",")
            skip = metric.endswith("_stderr") or metric in ("alias", "sample_len")
            if isinstance(value, int | float) and not skip and math.isfinite(float(value)):
                clean[metric] = float(value)
        samples = values.get("sample_len")
        count = int(samples) if isinstance(samples, int | float) else None
        metrics[task] = {**clean, **accuracy_stderrs(clean, count)}
    return metrics


def accuracy_stderrs(metrics: dict[str, float], samples: int | None) -> dict[str, float]:
    """``acc_stderr`` / ``acc_norm_stderr`` of a task scored on ``samples`` 0/1 items."""
    if not samples or samples < 2:
        return {}
    return {
        f"{name}_stderr": math.sqrt(metrics[name] * (1 - metrics[name]) / (samples - 1))
        for name in ("acc", "acc_norm")
        if name in metrics and 0 <= metrics[name] <= 1
    }


__all__ = ["GenesysLM", "accuracy_stderrs", "evaluate", "local_task_names", "write_task_configs"]


def main(argv: Sequence[str] | None = None) -> int:
    """``genesys eval --run OUT [--data DATA] [--tasks a,b] [--limit N]``: evaluate a run."""
    import argparse
    import io

    from genesys.store import open_store
    from genesys_trainer.compose import compose
    from genesys_trainer.data.prepare import open_data
    from genesys_trainer.data.tokenizer import load_tokenizer
    from genesys_trainer.model import ModelConfig
    from genesys_trainer.tree import tree_from_json

    parser = argparse.ArgumentParser(prog="genesys eval", description=main.__doc__)
    parser.add_argument("--run", required=True, help="output of `genesys train` (path or URI)")
    parser.add_argument("--data", default=None, help="prepared data (default: the run's)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names")
    parser.add_argument("--limit", type=int, default=None, help="items per task")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    store = open_store(args.run)
    config = json.loads(store.get_text("config.json"))
    data_dir, meta = open_data(args.data or config["train"]["data"])
    design = compose(tree_from_json(config["design"]))
    model = LanguageModel(design, ModelConfig(**config["model"]))
    state = torch.load(io.BytesIO(store.get_bytes("model.pt")), map_location="cpu")
    model.load_state_dict(state)
    metrics = evaluate(
        model.to(args.device),
        load_tokenizer(meta["tokenizer"], data_dir),
        data_dir=data_dir,
        tasks=args.tasks.split(",") if args.tasks else None,
        limit=args.limit,
        device=args.device,
    )
    store.put_text("eval.json", json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return 0
