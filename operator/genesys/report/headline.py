"""The run's headline: the best *discovered* design against the best *seed*, honestly.

A run's best entry is often a seed; the question a user asks is whether anything the run
discovered beats all the seeds. :func:`headline` answers it on validation loss:

- the best discovered design and the best seed are the highest by fitness among non-seeds and
  among seeds (quarantined designs never count);
- they are compared at the highest rung both verified, by ``margin = seed loss - discovered
  loss`` (positive: the discovered design is better);
- the interval is ``2 x sigma x sqrt(2)``, sigma the noise floor of the validation loss
  (``genesys noise``: its standard deviation over trainings with different seeds), about 95% of
  the spread of a difference of two trainings;
- the verdict says plainly whether a discovered design beats the seeds beyond that interval,
  ties within it, or does not beat them; without a measured noise floor it says so.

What must stay true: a pure function of (archive, fitness, rung order); it never calls a
difference inside the noise floor a win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from genesys.report.leaderboard import SUCCEEDED, finite_or_none
from genesys.store.archive import Archive, DesignRecord
from genesys.store.noise import LOSS

INTERVAL_SIGMAS = 2.0


@dataclass(frozen=True, slots=True)
class Headline:
    """Best discovered design against best seed, on validation loss at a common rung."""

    verdict: str  # beats | ties | loses | unmeasured-win | none
    discovered: str | None = None
    seed: str | None = None
    rung: str | None = None
    discovered_loss: float | None = None
    seed_loss: float | None = None
    margin: float | None = None  # seed loss - discovered loss
    interval: float | None = None  # half-width: 2 sigma sqrt(2); None when unmeasured

    def text(self) -> str:
        """One sentence for the terminal, the report and the run's status."""
        if self.verdict == "none" or self.margin is None:
            return "no discovered design has been verified at a rung a seed verified yet"
        pair = (
            f"best discovered {self.discovered} vs best seed {self.seed} at {self.rung}: "
            f"val loss {self.discovered_loss:.3f} vs {self.seed_loss:.3f}, "
            f"margin {self.margin:+.3f}"
        )
        if self.interval is None:
            noise = "noise floor not measured (genesys noise)"
            if self.verdict == "unmeasured-win":
                return f"{pair} ({noise}): a win that may be noise"
            return f"{pair} ({noise}): no discovered design beats the seeds"
        pair += f" +- {self.interval:.3f}"
        if self.verdict == "beats":
            return f"{pair}: a discovered design beats the seeds beyond the noise floor"
        if self.verdict == "ties":
            return f"{pair}: within the noise floor, no discovered design clearly beats the seeds"
        return f"{pair}: no discovered design beats the seeds"


def _best(records: Sequence[DesignRecord], fitness: Mapping[str, float]) -> DesignRecord | None:
    scored = [
        r for r in records if r.quarantine is None and math.isfinite(fitness.get(r.id, math.nan))
    ]
    return max(scored, key=lambda r: (fitness[r.id], -r.seq), default=None)


def _loss(record: DesignRecord, rung: str) -> float | None:
    verification = record.verifications.get(rung)
    if verification is None or verification.status != SUCCEEDED:
        return None
    return finite_or_none(verification.val_loss)


def verdict(margin: float, interval: float | None) -> str:
    """``beats``, ``ties`` or ``loses`` (with an interval); ``unmeasured-win`` or ``loses``."""
    if interval is None:
        return "unmeasured-win" if margin > 0 else "loses"
    if margin > interval:
        return "beats"
    return "ties" if margin >= -interval else "loses"


def headline(archive: Archive, fitness: Mapping[str, float], rung_order: Sequence[str]) -> Headline:
    """The best discovered design against the best seed (see the module docstring)."""
    designs = archive.ordered()
    discovered = _best([d for d in designs if not d.is_seed], fitness)
    seed = _best([d for d in designs if d.is_seed], fitness)
    if discovered is None or seed is None:
        return Headline("none", discovered.id if discovered else None, seed.id if seed else None)
    for rung in reversed(rung_order):
        ours, theirs = _loss(discovered, rung), _loss(seed, rung)
        if ours is None or theirs is None:
            continue
        sigma = archive.noise_floor().get(LOSS)
        interval = INTERVAL_SIGMAS * sigma * math.sqrt(2) if sigma is not None else None
        margin = theirs - ours
        return Headline(
            verdict(margin, interval), discovered.id, seed.id, rung, ours, theirs, margin, interval
        )
    return Headline("none", discovered.id, seed.id)


__all__ = ["INTERVAL_SIGMAS", "Headline", "headline", "verdict"]
