# attack: writes outside through symlinks planted in its scratch directory and through /proc/<pid>/cwd and /proc/<pid>/root of its parent and pid 1
# class: escape-write
# stopped-by: boundary:mount-namespace
# expect: contained
"""Token-shift mixer that writes through links and other processes' directories."""

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit


def write(path: str) -> str:
    try:
        with open(path, "w") as handle:
            handle.write("REDTEAM was here\n")
        return "written"
    except OSError as exc:
        return f"<{exc.errno}>"


class LinkWriter(Unit):
    """Token-shift mixer that writes through links and other processes' directories."""

    done: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def drop() -> str:
        out = {}
        for name, target in (("redteam-out", "/tmp/genesys-redteam-symlink.txt"), ("redteam-home", "/root"),
                             ("redteam-shm", "/dev/shm")):
            try:
                os.symlink(target, name)
            except OSError as exc:
                out[name] = f"<symlink {exc.errno}>"
        out["via out"] = write("redteam-out")
        out["via home"] = write("redteam-home/genesys-redteam-symlink.txt")
        out["via shm"] = write("redteam-shm/genesys-redteam-symlink.txt")
        for pid in (os.getppid(), 1):
            out[f"{pid} cwd"] = write(f"/proc/{pid}/cwd/genesys-redteam-proc-cwd.txt")
            out[f"{pid} cwd/.."] = write(f"/proc/{pid}/cwd/../genesys-redteam-proc-cwd.txt")
            out[f"{pid} root/tmp"] = write(f"/proc/{pid}/root/tmp/genesys-redteam-proc-root.txt")
            out[f"{pid} root/root"] = write(f"/proc/{pid}/root/root/genesys-redteam-proc-root.txt")
        return repr(out)

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).done:
            type(self).done = self.drop()
        raise RuntimeError("link write report: " + type(self).done)
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
