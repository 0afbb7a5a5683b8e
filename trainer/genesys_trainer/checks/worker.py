"""The sandbox worker: the only process that runs design code, inside the boundary.

Started by the sandbox's supervisor (:mod:`genesys.sandbox.supervisor`) as ``python -I -m
genesys_trainer.checks.worker --request FILE --result-fd N`` with rlimits already applied, in the
sandbox's scratch directory. It never holds the report pipe or the nonce: what it sends (one
frame over its own pipe, :mod:`genesys.sandbox.wire`) is a claim that the supervisor validates,
and the causality and batch-independence verdicts are not its to give. It:

1. installs a ``sys.addaudithook`` guard (defence in depth; the operating-system boundary holds
   without it) refusing sockets, subprocesses, exec/fork, ctypes, signals, writes outside the
   scratch directory and reads outside the Python installation;
2. composes the design and fits it to the rung;
3. runs the probes it was given: for each, a fresh model from the given seed, its block stack on
   the given tokens, in eval mode or in train mode with gradients on, called from a fresh thread
   (so no checker frame is on the design's call stack);
4. role ``checks`` only: runs the other dynamic checks (forward, unit tests, differentiability,
   complexity, effectiveness).

What must stay true: the guard is installed before design code is compiled; probes run before
any other check touches the design, on fresh instances.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import site
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

import genesys
import genesys_trainer
from genesys.api.ladder import RungConfig
from genesys.sandbox.report import Finding, Report, Status
from genesys.sandbox.wire import encode_frame
from genesys_trainer.checks.dynamic import CheckSettings, Context, run_dynamic_checks
from genesys_trainer.model import LanguageModel
from genesys_trainer.seeds import load_seed
from genesys_trainer.tree import tree_from_json

PROBE_ROLE_CHECKS = {"compose", "param_fit"}  # what runs before the probes
BLOCKED_EVENT_PREFIXES = (
    "socket.",
    "subprocess.",
    "ctypes.",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.kill",
    "os.killpg",
    "pty.",
    "webbrowser.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "imaplib.",
    "poplib.",
    "nntplib.",
    "telnetlib.",
    "os.chmod",
    "os.chown",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.link",
    "os.symlink",
    "os.truncate",
    "shutil.",
    "code.__new__",
    "sys.setprofile",
    "sys.settrace",
    "sys.addaudithook",
    "cpython.PyInterpreterState_Clear",
    "pickle.find_class",
    "os.startfile",
    "msvcrt.",
)


def readable_roots(sandbox: Path) -> list[str]:
    """Directories design code may read from: the sandbox and the Python installation."""
    roots = {str(sandbox), sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    roots.update(path for path in sysconfig.get_paths().values())
    roots.update(str(Path(p).resolve()) for p in sys.path if p)
    roots.update({"/dev/null", "/dev/urandom", "/proc/self", "/sys/devices/system/cpu"})
    roots.update(
        str(Path(module.__file__ or "").parents[1]) for module in (genesys, genesys_trainer)
    )
    return sorted(str(Path(root).resolve()) for root in roots if root)


def install_guard(sandbox: Path) -> None:
    """Refuse dangerous operations for the rest of this process's life."""
    writable = str(sandbox.resolve())
    readable = tuple(readable_roots(sandbox))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def guard(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(BLOCKED_EVENT_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args and isinstance(args[0], str | bytes):
            raw = args[0].decode() if isinstance(args[0], bytes) else args[0]
            path = os.path.realpath(raw)
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or bool(flags & write_flags)
            if writing and not inside(path, (writable,)):
                raise PermissionError(f"sandbox: writing {raw!r} is not allowed")
            if not writing and not inside(path, (*readable, writable)):
                raise PermissionError(f"sandbox: reading {raw!r} is not allowed")

    sys.addaudithook(guard)


def forward_in_fresh_thread(
    model: LanguageModel, tokens: torch.Tensor, train: bool
) -> torch.Tensor:
    """The block stack's hidden states, computed by the model's own method on a new thread.

    The thread's stack holds only the standard library's thread pool, torch and the model: no
    frame of the checker, as in training (eval: under ``torch.no_grad``, as at evaluation).
    """
    method = model.hidden_states if train else torch.no_grad()(model.hidden_states)
    with ThreadPoolExecutor(max_workers=1) as pool:
        hidden = pool.submit(method, tokens).result()
    return torch.Tensor.as_subclass(hidden, torch.Tensor).detach()


def run_probes(ctx: Context, plan: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """Every probe on a fresh model: (shapes, float32 blob of hidden states)."""
    shapes: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for probe in plan.get("probes", []):
        rows, length = int(probe["rows"]), int(probe["length"])
        raw = Path(probe["tokens"]).read_bytes()
        tokens = torch.from_numpy(np.frombuffer(raw, dtype="<i8").reshape(rows, length).copy())
        if int(tokens.min()) < 0 or int(tokens.max()) >= ctx.rung.vocab_size:
            raise ValueError(f"probe {probe['name']}: token ids outside the vocabulary")
        model_seed = int(plan["model_seed"])
        random.seed(model_seed)
        np.random.seed(model_seed % 2**32)
        model = ctx.model(model_seed % 2**63)
        model.train(bool(probe["train"]))
        seed = int(probe["forward_seed"])
        random.seed(seed)
        torch.manual_seed(seed)
        hidden = forward_in_fresh_thread(model, tokens, bool(probe["train"]))
        if hidden.dim() != 3 or tuple(hidden.shape[:2]) != (rows, length):
            raise ValueError(f"the block stack returned shape {tuple(hidden.shape)}")
        data = hidden.to(torch.float32).contiguous().numpy().tobytes()
        shapes.append(
            {
                "name": probe["name"],
                "rows": rows,
                "length": length,
                "width": int(hidden.shape[2]),
                "offset": offset,
            }
        )
        chunks.append(data)
        offset += len(data)
    return shapes, b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    """Run one worker request; the frame goes to the result pipe."""
    parser = argparse.ArgumentParser(prog="genesys_trainer.checks.worker")
    parser.add_argument("--request", required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args(argv)
    sandbox = Path.cwd()
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    result_pipe = os.fdopen(args.result_fd, "wb")
    limits = request.get("limits", {})
    reference = load_seed("gpt2")  # the effectiveness reference, read before the guard
    threads = int(limits.get("threads", 1))
    # Both sandboxes fit and probe at the same time: one thread each until the probes are done,
    # so they do not fight over the cores (OpenMP threads spin as they wait).
    torch.set_num_threads(1)
    report = Report()
    report.info["worker"] = {
        "role": request["role"],
        "audit_guard": bool(limits.get("audit_guard", True)),
    }
    # Python finds its temporary directory by creating and unlinking a file there, which the
    # guard refuses: find it now, so that a later gettempdir() (torch._dynamo's, at its first
    # import) gets the cached answer instead of "No usable temporary directory found".
    tempfile.gettempdir()
    if report.info["worker"]["audit_guard"]:
        install_guard(sandbox)
    fit: dict[str, int] | None = None

    def probe(ctx: Context) -> None:
        nonlocal fit
        shapes, blob = run_probes(ctx, request.get("probes") or {})
        torch.set_num_threads(threads)  # the reference sandbox goes on alone
        assert ctx.fit is not None
        fit = {"n_embd": ctx.fit.n_embd, "n_layer": ctx.fit.n_layer, "n_head": ctx.fit.n_head}
        sent = {"stage": "probes", "report": report.to_json(), "probes": shapes, "fit": fit}
        result_pipe.write(encode_frame(sent, blob))
        result_pipe.flush()

    try:
        tree = tree_from_json(request["design"])
    except Exception as exc:  # malformed tree: report, never crash
        report.add(Finding("compose", Status.FAIL, str(exc)))
    else:
        run_dynamic_checks(
            tree,
            RungConfig.model_validate(request["rung"]),
            CheckSettings.from_json(request.get("settings", {})),
            report,
            reference=reference,
            only=PROBE_ROLE_CHECKS if request["role"] == "probe" else None,
            probe=probe,
        )
    result = {"stage": "final", "report": report.to_json(), "fit": fit}
    result_pipe.write(encode_frame(result, b""))
    result_pipe.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
