"""Scripted agent replies for design-session tests: proposals, verdicts, plans and unit code.

Each helper returns one step of a :class:`~support.scripted_llm.ScriptedLLMServer` script. The
unit sources are real code that the sandbox checks: ``GELU_MLP`` passes every check as a
channel mixer, ``LEAKY_MLP`` breaks causality (it mixes in the mean over the whole sequence).
"""

from __future__ import annotations

import json
from typing import Any

Step = dict[str, Any]

GELU_MLP = '''from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


class GeluMLP(Unit):
    """A position-wise two-layer MLP with a GELU."""

    def __init__(self, d_model: int, expand: int = 4, **context: Any) -> None:
        super().__init__(d_model, **context)
        self.up = nn.Linear(d_model, expand * d_model, bias=False)
        self.down = self.residual(nn.Linear(expand * d_model, d_model, bias=False))

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        return self.down(F.gelu(self.up(X))), {}
'''

LEAKY_MLP = GELU_MLP.replace(
    "return self.down(F.gelu(self.up(X))), {}",
    "context = X.mean(dim=1, keepdim=True)  # every position sees the whole sequence\n"
    "        return self.down(F.gelu(self.up(X + context))), {}",
)

GELU_MLP_TESTS = """import torch


def test_shape_is_kept(unit, X):
    Y, Z = unit(X)
    assert Y.shape == X.shape


def test_output_is_finite(unit, X):
    Y, Z = unit(X)
    assert torch.isfinite(Y).all()
"""


def block_source(name: str, *, children: bool = True) -> str:
    """A root block like the seeds' ResidualBlock under another name (no children if asked)."""
    if not children:
        return f'''from typing import Any

from torch import Tensor, nn

from genesys_trainer.units import Unit


class {name}(Unit):
    """One linear residual branch."""

    def __init__(self, d_model: int, **context: Any) -> None:
        super().__init__(d_model, **context)
        self.proj = self.residual(nn.Linear(d_model, d_model, bias=False))

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        return X + self.proj(X), {{}}
'''
    return f'''from typing import Any

from torch import Tensor

from genesys_trainer.units import ChildDecl, Unit


class {name}(Unit):
    """Pre-norm block: a sequence-mixer branch, then a channel-mixer branch."""

    CHILDREN = (
        ChildDecl("seq_norm", "normalise each position"),
        ChildDecl("seq_mixer", "causal sequence mixer"),
        ChildDecl("channel_norm", "normalise each position"),
        ChildDecl("channel_mixer", "position-wise MLP"),
    )

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        H, Z = self.seq_norm(X, **Z)
        H, Z = self.seq_mixer(H, **Z)
        X = X + H
        H, Z = self.channel_norm(X, **Z)
        H, Z = self.channel_mixer(H, **Z)
        return X + H, Z
'''


DIRECT_BLOCK = '''from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genesys_trainer.units import Unit


def rms_norm(x: Tensor, weight: Tensor) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


class DirectBlock(Unit):
    """Causal multi-head attention and a GELU MLP, each behind a pre-norm residual."""

    def __init__(self, d_model: int, **context: Any) -> None:
        super().__init__(d_model, **context)
        self.norm1 = nn.Parameter(torch.ones(d_model))
        self.norm2 = nn.Parameter(torch.ones(d_model))
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = self.residual(nn.Linear(d_model, d_model, bias=False))
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = self.residual(nn.Linear(4 * d_model, d_model, bias=False))

    def _forward(self, X: Tensor, **Z: Any) -> tuple[Tensor, dict[str, Any]]:
        B, L, D = X.shape
        heads = self.n_head
        q, k, v = self.qkv(rms_norm(X, self.norm1)).chunk(3, dim=-1)
        q, k, v = (t.view(B, L, heads, D // heads).transpose(1, 2) for t in (q, k, v))
        A = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        X = X + self.out(A.transpose(1, 2).reshape(B, L, D))
        return X + self.down(F.gelu(self.up(rms_norm(X, self.norm2)))), {}
'''


def _json_reply(value: Any, prose: str = "") -> Step:
    return {"reply": f"{prose}```json\n{json.dumps(value, indent=1)}\n```\n"}


def queries(*texts: str) -> Step:
    """A search round's reply."""
    return _json_reply({"queries": list(texts)}, "Let me look these up.\n")


def proposal(title: str = "GELU channel mixer", selected: str | None = "channel_mixer") -> Step:
    """A complete proposal (mutation proposals name the selected unit)."""
    body: dict[str, Any] = {
        "title": title,
        "motivation": "A simpler channel mixer may train faster at small scale.",
        "related_work": "GLU variants (Shazeer 2020); the GPT-2 MLP.",
        "analysis": "Same parameters as SwiGLU, one matrix fewer per token; linear in length.",
        "design_plan": "Replace the channel mixer by a two-layer GELU MLP, hidden 4 x d_model.",
        "pseudo_code": "Y = down(gelu(up(X)))",
        "references": ["Shazeer, GLU Variants Improve Transformer, 2020"],
    }
    if selected is not None:
        body["selected_unit"] = selected
    return _json_reply(body, "Here is my proposal.\n")


def verdict(rating: float, review: str = "Sound and clearly motivated.") -> Step:
    """A reviewer's or observer's verdict."""
    return _json_reply({"rating": rating, "review": review, "suggestions": "none"})


def plan(unit: str, reuse: tuple[str, ...] = ()) -> Step:
    """A planner's reply."""
    return _json_reply({"unit": unit, "reuse": list(reuse), "instructions": "write it"})


def unit(
    source: str, name: str, children: dict[str, str] | None = None, tests: str = GELU_MLP_TESTS
) -> Step:
    """A coder's reply: the unit, its tests, and its bindings."""
    meta = {
        "unit": name,
        "children": children or {},
        "hyperparameters": {},
        "requirements": f"the unit {name}",
    }
    text = (
        f"Here is the unit.\n```python\n{source}```\nIts tests:\n```python\n{tests}```\n"
        f"```json\n{json.dumps(meta)}\n```\n"
    )
    return {"reply": text}


def block(source: str, tests: str = GELU_MLP_TESTS) -> Step:
    """A direct-flow coder's reply: the whole block and its tests."""
    return {"reply": f"```python\n{source}```\n```python\n{tests}```\n"}


FAST_CHECKS: dict[str, Any] = {
    "timeRatioError": 1000.0,  # the session flows are under test, not the timing of the checks
    "timeRatioWarning": 500.0,
    "forwardLength": 128,
    "causalityLength": 24,
    "effectivenessSteps": 3,
    "sandboxTimeoutSeconds": 180,
}


def llm_agents(base_url: str, **key: Any) -> dict[str, Any]:
    """``spec.agents`` for every role on model m1 (priced) at ``base_url``.

    ``key`` says where the API key comes from: ``apiKeyEnv`` (default) or ``apiKeySecret``.
    """
    return {
        "offline": False,
        "baseUrl": base_url,
        **(key or {"apiKeyEnv": "GENESYS_TEST_LLM_KEY"}),
        "models": {
            role: [{"model": "m1"}]
            for role in ("proposer", "reviewer", "planner", "coder", "observer")
        },
        "prices": {"m1": {"inputPerMTokens": 1.0, "outputPerMTokens": 2.0}},
        "maxUsdPerSession": 10.0,
        "timeoutSeconds": 5,
        "maxRetries": 2,
        "maxTokens": 2048,
    }


def run_spec(base_url: str, name: str = "llm", **sessions: Any) -> dict[str, Any]:
    """A DiscoveryRun document for LLM sessions against ``base_url`` (model m1, priced)."""
    return {
        "apiVersion": "genesys.dev/v1alpha1",
        "kind": "DiscoveryRun",
        "metadata": {"name": name},
        "spec": {
            "seed": 1,
            "ladder": {"rungs": [{"name": "nano", "preset": "nano", "budget": 1, "tokens": 24576}]},
            "sessions": {"parallel": 1, "maxDesigns": 1, "searchRounds": 0, **sessions},
            "agents": llm_agents(base_url),
            "checks": FAST_CHECKS,
            "verification": {
                "scheduler": "local",
                "maxParallelJobsPerRung": 1,
                "evalTasks": ["genesys_cloze"],
                "evalLimit": 400,
                "data": {"dataset": "builtin", "tokenizer": "byte", "vocabSize": 256},
                "resources": {"gpus": 0, "cpu": "1", "memory": "4Gi"},
            },
            "storage": {"local": {"path": "store"}},
        },
    }
