# attack: fills the sandbox's writable places (/tmp, the scratch working directory, /dev/shm) with 8 MiB files up to 4.5 GiB, more than the 4 GiB memory limit: tmpfs pages and scratch files count against neither the address-space limit nor the per-file size limit
# class: resource
# stopped-by: boundary:scratch-size
# expect: contained
# timeout: 90
"""Mixer with an on-disk "activation cache"."""

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

FILE = (8 << 20) - 4096  # just under the 8 MiB file-size limit
LIMIT = 9 << 29  # 4.5 GiB


class DiskFiller(Unit):
    """Mixer with an on-disk "activation cache"."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        block = b"\xa5" * FILE
        written, where = 0, {}
        for directory in ("/tmp", ".", "/dev/shm"):
            index = 0
            while written < LIMIT:
                try:
                    with open(f"{directory}/redteam-cache-{index}.bin", "wb") as handle:
                        handle.write(block)
                except OSError as exc:
                    where[directory + " stopped by"] = f"errno {exc.errno}"
                    break
                written += len(block)
                index += 1
            where[directory] = f"{index * FILE / 2**30:.2f} GiB"
        if written >= LIMIT:
            raise RuntimeError(f"REDTEAM-ESCAPED[wrote {written / 2**30:.1f} GiB, above the memory limit: {where}]")
        raise RuntimeError(f"fill report: {written / 2**30:.2f} GiB, {where}")
