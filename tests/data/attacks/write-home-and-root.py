# attack: writes files into /root, root's dotfile area, the canary directory, /etc, / and /var
# class: escape-write
# stopped-by: boundary:mount-namespace
# expect: contained
"""Token-shift mixer that tries to leave files all over the host."""

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

TARGETS = ("/root/genesys-redteam-pwned.txt", "/root/.genesys-redteam-profile",
           "/root/.genesys-canary/genesys-redteam-pwned.txt", "/etc/genesys-redteam-pwned",
           "/genesys-redteam-pwned", "/var/genesys-redteam-pwned", "/work/genesys-redteam-pwned")


class HostWriter(Unit):
    """Token-shift mixer that tries to leave files all over the host."""

    done: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def drop() -> str:
        out = {}
        for path in (*TARGETS, os.path.expanduser("~/genesys-redteam-pwned.txt")):
            try:
                with open(path, "a") as handle:
                    handle.write("REDTEAM was here\n")
                out[path] = "written"
            except OSError as exc:
                out[path] = f"<{exc.errno}>"
        return repr(out)

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).done:
            type(self).done = self.drop()
        raise RuntimeError("write report: " + type(self).done)
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
