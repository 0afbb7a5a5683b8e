"""The offline proposer's proposal text: what a genetic change did, and why it might help.

:func:`proposal_text` renders a :class:`~genesys.agents.genetic_operators.Change` as the
markdown ``proposal.md`` of a design: title, operator and parents, what changed, a motivation
keyed on the units and hyper-parameters involved (:data:`UNIT_RATIONALE`,
:data:`PARAMETER_RATIONALE`), and the unit tree.

What must stay true: the text depends only on its arguments (no randomness, no store), so a
session that resumes writes the same proposal for the same candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

from genesys.agents.genetic_operators import Change
from genesys.agents.library import Library
from genesys_trainer.tree import UnitTree

UNIT_RATIONALE: dict[str, str] = {
    "RotaryMHA": "softmax attention with rotary positions: exact access to every earlier "
    "token, at a cost quadratic in sequence length",
    "Mamba2Mixer": "a selective state-space recurrence (SSD): linear time, a constant-size "
    "state and input-dependent decay",
    "MultiScaleRetention": "retention with fixed per-head decays: a linear-time recurrence "
    "that keeps a parallel form for training",
    "RWKV6TimeMix": "token-shift mixing with data-dependent decay: a linear-time recurrence "
    "whose forgetting adapts to the input",
    "TTTLinear": "a hidden state that is itself a linear model trained at test time: linear "
    "time, with a more expressive memory than a fixed decay",
    "SwiGLUMLP": "a gated (SwiGLU) MLP, the strongest common channel mixer per parameter",
    "RetNetMLP": "a plain GELU MLP: two matrices instead of three, leaving the parameter fit "
    "more room for depth and width",
    "RWKV6ChannelMix": "a receptance-gated channel mixer with a token shift, so it also sees "
    "the previous position",
    "ZeroMixer": "no channel mixer at all: every parameter goes to sequence mixing, as in Mamba2",
    "RMSNorm": "RMS normalisation before the branch, which keeps the residual stream's scale "
    "stable",
    "Identity": "no normalisation before the branch: cheaper, leaving the residual stream's "
    "scale to the other norm and the model's final norm",
    "CausalConv": "a short causal convolution that gives the mixer local context before its "
    "long-range memory",
}

PARAMETER_RATIONALE: dict[str, str] = {
    "hidden_ratio": "the channel mixer's width: more capacity per block, at the cost of depth "
    "or width the parameter fit can afford",
    "rotary_base": "the rotary base: a larger base rotates more slowly and resolves positions "
    "over longer ranges",
    "d_state": "the state size: how much history the recurrence can hold per head",
    "expand": "the inner expansion: the mixer's width relative to the model's",
    "mini_batch": "the TTT mini-batch: smaller batches update the inner model more often, "
    "larger ones are more parallel",
    "kernel_size": "the convolution's reach over the most recent tokens",
    "value_factor": "the value width per head: more memory per head for more parameters",
    "mix_rank": "the rank of the data-dependent token-shift LoRA",
}

QUADRATIC_MIXERS = frozenset({"RotaryMHA"})


def _cost_contrast(old: str, new: str, library: Library) -> str:
    kinds = {library[n].kind for n in (old, new) if n in library}
    if kinds != {"seq_mixer"}:
        return ""
    if old in QUADRATIC_MIXERS and new not in QUADRATIC_MIXERS:
        return (
            "This trades quadratic attention for a linear-time recurrence: cheaper at long "
            "context, betting that a compressed state keeps what the loss needs."
        )
    if new in QUADRATIC_MIXERS and old not in QUADRATIC_MIXERS:
        return (
            "This trades a linear-time recurrence for exact attention: quadratic in length, "
            "but with direct recall of every earlier token."
        )
    return (
        "Both are linear-time recurrences; the change is in how the state is written and how "
        "it forgets."
    )


def motivation(change: Change, library: Library) -> str:
    """A short markdown motivation keyed on the units and kinds the change involves."""
    lines: list[str] = []
    if change.action == "perturb":
        note = PARAMETER_RATIONALE.get(change.parameter, f"the hyper-parameter {change.parameter}")
        lines.append(f"- This tunes {note}.")
    elif change.action in ("replace", "graft"):
        new_note = UNIT_RATIONALE.get(change.new, "a unit from the library")
        lines.append(f"- `{change.new}` brings {new_note}.")
        if change.old:
            old_note = UNIT_RATIONALE.get(change.old, "the parent's unit")
            lines.append(f"- It takes the place of `{change.old}`, {old_note}.")
        contrast = _cost_contrast(change.old, change.new, library)
        if contrast:
            lines.append(f"- {contrast}")
    for name in change.units:
        if name != change.new and name in UNIT_RATIONALE:
            lines.append(f"- `{name}`: {UNIT_RATIONALE[name]}.")
    lines.append(
        "- The parameter fit re-balances depth and width at each rung, so the comparison "
        "with the parent is at an equal parameter budget."
    )
    return "\n".join(lines)


def proposal_text(
    tree: UnitTree,
    change: Change,
    operator: str,
    parents: Sequence[str],
    digest: str,
    library: Library,
) -> str:
    """The proposal as markdown: title, operator and parents, what changed, why, the tree."""
    lineage = ", ".join(f"`{p}`" for p in parents) or "none"
    return (
        f"# {change.title}\n\n"
        f"- Operator: {operator}\n"
        f"- Parents: {lineage}\n"
        f"- Structural hash: `{digest[:16]}`\n\n"
        f"## What changed\n\n{change.summary}\n\n"
        f"## Why\n\n{motivation(change, library)}\n\n"
        f"## Unit tree\n\n```text\n{tree.render()}\n```\n"
    )


__all__ = [
    "PARAMETER_RATIONALE",
    "QUADRATIC_MIXERS",
    "UNIT_RATIONALE",
    "motivation",
    "proposal_text",
]
