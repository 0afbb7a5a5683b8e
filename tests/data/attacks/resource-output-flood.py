# attack: floods stdout and stderr with 1 MiB chunks (os.write and print), up to 4 GiB, then hangs
# class: resource
# stopped-by: boundary:timeout
# expect: fail:sandbox
# timeout: 30
"""Mixer with very verbose "debug logging"."""

import sys
import time

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

CHUNK = b"REDTEAM flood " * (1 << 16)


class OutputFlood(Unit):
    """Mixer with very verbose "debug logging"."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        written = 0
        while written < 4 << 30:
            for fd in (1, 2):
                written += os.write(fd, CHUNK)
            print(CHUNK.decode(), file=sys.stderr)
        while True:
            time.sleep(1)
