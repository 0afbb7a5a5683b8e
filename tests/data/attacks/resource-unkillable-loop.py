# attack: ignores every catchable signal (TERM, INT, HUP, ALRM, XCPU, USR1/2), leaves its process group and spins forever, even in finally blocks
# class: resource
# stopped-by: boundary:timeout
# expect: fail:sandbox
# timeout: 15
"""Mixer that refuses to stop."""

import signal

from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGXCPU,
            signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT, signal.SIGPIPE):
    try:  # at import, in the main thread: blocks may run on other threads
        signal.signal(sig, signal.SIG_IGN)
    except (OSError, ValueError):
        pass


class Unstoppable(Unit):
    """Mixer that refuses to stop."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        while True:
            try:
                while True:
                    pass
            finally:
                continue
        return X
