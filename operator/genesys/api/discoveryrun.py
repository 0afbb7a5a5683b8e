"""The DiscoveryRun resource: one architecture-discovery run, its spec and its status.

Every knob of the original Genesys system is a field here, with the paper's value
as its default, a description and bounds. The same YAML runs on a cluster (the kopf operator)
and on one CPU machine (``genesys run``).

What must stay true:
- Defaults equal the paper's numbers; ``tests/unit/test_api_defaults.py`` pins them.
- Field-level bounds live here; rules that span fields (rungs growing, budgets shrinking, secrets
  required unless offline, ...) live in :mod:`genesys.api.validation` so that each error can name
  the exact field path.
- The CRDs in ``crds/`` are generated from these models (``genesys crds``); never edit them.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import Field, StringConstraints

from genesys.api.base import (
    ENV_VAR_PATTERN,
    HTTP_URL_PATTERN,
    RUNG_NAME_PATTERN,
    S3_BUCKET_PATTERN,
    ApiModel,
    Condition,
    DnsSubdomain,
    NonEmptyStr,
    ObjectMeta,
    Probability,
    Quantity,
    SecretKeyRef,
)
from genesys.api.presets import PAPER_LADDER

PresetName = Literal["nano", "micro", "mini", "14M", "31M", "70M", "125M", "350M"]
RungName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=24, pattern=RUNG_NAME_PATTERN),
]

# ---------------------------------------------------------------------------------------- ladder


class ModelShape(ApiModel):
    """An explicit model shape for a rung, instead of (or over) a preset's."""

    n_embd: int = Field(ge=8, le=65536, description="Model width d_model.")
    n_layer: int = Field(ge=1, le=512, description="Number of blocks.")
    n_head: int = Field(
        default=4, ge=1, le=1024, description="Attention heads (n_embd % n_head == 0)."
    )


class Toleration(ApiModel):
    """A Kubernetes toleration for training pods."""

    key: str | None = Field(default=None, description="Taint key; unset matches all keys.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect; unset matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class RungResources(ApiModel):
    """Per-pod resources of one rung's training pods; unset fields take verification.resources'."""

    gpus: int | None = Field(default=None, ge=0, le=64, description="GPUs per pod.")
    cpu: Quantity | None = Field(default=None, description="CPU request.")
    memory: Quantity | None = Field(default=None, description="Memory request and limit.")
    shm_size: Quantity | None = Field(default=None, description="Size of /dev/shm.")


Affinity = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes ``Affinity``, passed to the pods as written (its keys are checked on validation)."""


class Rung(ApiModel):
    """One rung of the ladder of scales. Unset fields take the preset's value.

    Placement fields (``resources``, ``nodeSelector``, ``tolerations``, ``affinity``,
    ``priorityClassName``, ``queueName``) place this rung's training pods; each one left unset
    takes ``spec.verification``'s.
    """

    name: RungName = Field(description="Rung name, unique in the ladder, e.g. 14M.")
    preset: PresetName | None = Field(
        default=None,
        description="Scale preset giving the model shape and recipe; paper: 14M, 31M, 70M, 125M, "
        "350M; CPU: nano, micro, mini. Required unless model, lr and tokens are given.",
    )
    model: ModelShape | None = Field(
        default=None, description="Explicit model shape; overrides the preset's shape."
    )
    budget: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Designs verified at this rung. Unset: derived from ladder.nTarget and "
        "ladder.selectionRatio (256/64/16/4/1 for the paper's ladder).",
    )
    tokens_per_param: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="Training tokens per actual parameter (paper: 50/40/30/20/20).",
    )
    tokens: int | None = Field(
        default=None, ge=1, description="Explicit training tokens; overrides tokensPerParam."
    )
    lr: float | None = Field(default=None, gt=0, le=1, description="Peak AdamW learning rate.")
    context_length: int | None = Field(
        default=None, ge=16, le=1_048_576, description="Context length (paper: 2048)."
    )
    batch_tokens: int | None = Field(
        default=None, ge=1, description="Tokens per optimiser step (paper: ~0.5M = 524288)."
    )
    confidence_points: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Confidence a verification at this rung adds (paper: 1/2/3/4/5).",
    )
    slowdown_tolerance: float | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Training stops as too slow beyond this x the GPT-2 reference time.",
    )
    deadline_seconds: int | None = Field(
        default=None,
        ge=60,
        le=60 * 86_400,
        description="Wall-clock limit of one training Job at this rung (activeDeadlineSeconds on "
        "a cluster; enforced by genesys run locally); a Job past it is stopped and counted as a "
        "failed attempt. Unset: the preset's (1h for CPU rungs, 6h at 14M to 14 days at 350M).",
    )
    resources: RungResources | None = Field(
        default=None,
        description="Resources of this rung's training pods; each unset field takes "
        "verification.resources'.",
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="nodeSelector of this rung's training pods (replaces "
        "verification.nodeSelector). Unset: verification.nodeSelector.",
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        description="Tolerations of this rung's training pods (replace verification's). Unset: "
        "verification.tolerations.",
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Affinity of this rung's training pods (a Kubernetes Affinity: nodeAffinity, "
        "podAffinity, podAntiAffinity). Unset: verification.affinity.",
    )
    priority_class_name: DnsSubdomain | None = Field(
        default=None,
        description="priorityClassName of this rung's training pods. Unset: verification's.",
    )
    queue_name: DnsSubdomain | None = Field(
        default=None,
        description="Kueue LocalQueue of this rung's training Jobs. Unset: verification's.",
    )


def paper_rungs() -> list[Rung]:
    """The paper's five rungs, 14M to 350M, with budgets derived."""
    return [Rung(name=name, preset=cast(PresetName, name)) for name in PAPER_LADDER]


class Ladder(ApiModel):
    """The ladder of scales: rungs smallest first, each verifying fewer designs."""

    n_target: int = Field(
        default=1, ge=1, le=100_000, description="Designs verified at the top rung (paper: 1)."
    )
    selection_ratio: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Fraction promoted from one rung to the next; a rung's derived budget is the "
        "one above divided by this (paper: 0.25).",
    )
    rungs: list[Rung] = Field(
        default_factory=paper_rungs,
        min_length=1,
        max_length=16,
        description="Rungs, smallest first. Default: the paper's 14M, 31M, 70M, 125M, 350M.",
    )


# -------------------------------------------------------------------------------------- sessions


class GeneticOperators(ApiModel):
    """Probabilities of the genetic operators and when each is enabled."""

    mutation: Probability = Field(
        default=0.80, description="Probability of mutation (one parent) (paper: 0.80)."
    )
    crossover: Probability = Field(
        default=0.15, description="Probability of crossover (two parents) (paper: 0.15)."
    )
    scratch: Probability = Field(
        default=0.05, description="Probability of design from scratch (no parent) (paper: 0.05)."
    )
    crossover_warmup: int = Field(
        default=10,
        ge=0,
        le=100_000,
        description="Crossover is enabled once this many designs are implemented (paper: 10).",
    )
    scratch_warmup: int = Field(
        default=20,
        ge=0,
        le=100_000,
        description="Scratch is enabled once this many designs are implemented (paper: 20).",
    )
    adaptive: bool = Field(
        default=False,
        description="Weigh each operator's probability by how often its designs so far beat "
        "their parents' fitness (a scratch design: the median design's), smoothed by one "
        "success and one failure per operator; false: the fixed probabilities (the paper's).",
    )


class Sessions(ApiModel):
    """Design sessions: how new designs are proposed, reviewed and implemented."""

    flow: Literal["gau", "direct"] = Field(
        default="gau",
        description="gau: genetic programming over unit trees, one unit at a time; direct: the "
        "whole block written in one prompt (the paper's baseline).",
    )
    parallel: int = Field(default=1, ge=1, le=1024, description="Design sessions run at once.")
    max_designs: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Stop proposing after this many designs. Unset: until the ladder is spent.",
    )
    operators: GeneticOperators = Field(
        default_factory=GeneticOperators, description="Genetic-operator probabilities."
    )
    search_rounds: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Literature-search rounds before a proposal is written (paper: 2-3).",
    )
    proposal_pass_rating: float = Field(
        default=4.0,
        ge=0,
        le=5,
        description="Reviewer rating (0-5) at or above which a proposal passes (paper: 4).",
    )
    observer_pass_rating: float = Field(
        default=3.0,
        ge=0,
        le=5,
        description="Observer rating (0-5) at or above which a unit is accepted (paper: 3).",
    )
    max_proposal_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Proposal refinements with the review before giving up (paper: 10).",
    )
    max_unit_attempts: int = Field(
        default=7, ge=1, le=100, description="Attempts to implement one unit (paper: 7)."
    )
    max_failed_rounds: int = Field(
        default=3,
        ge=0,
        le=100,
        description="A design is abandoned after more than this many failed rounds (paper: 3).",
    )
    max_implementation_sessions: int = Field(
        default=3,
        ge=1,
        le=100,
        description="A proposal failing more implementation sessions than this is marked "
        "challenging and skipped (paper: 3).",
    )
    max_consecutive_failures: int | None = Field(
        default=10,
        ge=1,
        le=100_000,
        description="The run stops starting work and finishes Failed (reason SessionsFailed) "
        "once this many design sessions in a row have failed: an endpoint or model that "
        "never yields a design should not look like a finished run. Unset: never.",
    )


# ---------------------------------------------------------------------------------------- agents


class WeightedModel(ApiModel):
    """One model a role may use, with its draw weight."""

    model: NonEmptyStr = Field(description="Model name as the endpoint knows it.")
    weight: float = Field(default=1.0, ge=0, le=1e6, description="Relative draw weight.")


def _default_models() -> list[WeightedModel]:
    return [WeightedModel(model="gpt-4o", weight=1.0)]


class RoleModels(ApiModel):
    """Per-role model lists; one model per role is drawn per session (the paper's hybrid)."""

    proposer: list[WeightedModel] = Field(
        default_factory=_default_models, min_length=1, description="Models of the proposer."
    )
    reviewer: list[WeightedModel] = Field(
        default_factory=_default_models, min_length=1, description="Models of the reviewer."
    )
    planner: list[WeightedModel] = Field(
        default_factory=_default_models, min_length=1, description="Models of the planner."
    )
    coder: list[WeightedModel] = Field(
        default_factory=_default_models, min_length=1, description="Models of the coder."
    )
    observer: list[WeightedModel] = Field(
        default_factory=_default_models, min_length=1, description="Models of the observer."
    )


class Price(ApiModel):
    """USD prices of one model per million tokens."""

    input_per_m_tokens: float = Field(ge=0, le=10_000, description="USD per 1M prompt tokens.")
    output_per_m_tokens: float = Field(ge=0, le=10_000, description="USD per 1M completion tokens.")


REASONING_MODEL_PATTERN = r"(^|/)(o[1-9]|gpt-5)"
"""OpenAI model names that refuse ``max_tokens`` and ``temperature`` (its reasoning models)."""

ExtraBody = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]


class ModelOptions(ApiModel):
    """How requests to one model are shaped (endpoints differ in what they accept)."""

    token_limit: Literal["max_tokens", "max_completion_tokens", "none"] | None = Field(
        default=None,
        description="The request field that carries the completion-token limit: max_tokens "
        "(vLLM, Ollama, llama.cpp, older OpenAI models), max_completion_tokens (OpenAI's "
        "reasoning models, which refuse max_tokens) or none (send no limit). Unset: "
        "max_completion_tokens for OpenAI reasoning models (names starting o1..o9 or gpt-5, "
        "after any provider/ prefix), else max_tokens.",
    )
    temperature: bool | None = Field(
        default=None,
        description="Send the sampling temperature. Unset: not for OpenAI reasoning models "
        "(they refuse it), else yes.",
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None,
        description="reasoning_effort of each request (OpenAI reasoning models; vLLM and "
        "others pass it to the chat template). Unset: not sent.",
    )
    extra_body: ExtraBody = Field(
        default_factory=dict,
        description="Fields added to each request's JSON body as written, e.g. "
        '{"chat_template_kwargs": {"enable_thinking": false}} for a Qwen3 model on vLLM.',
    )


def _default_prices() -> dict[str, Price]:
    return {
        "gpt-4o": Price(input_per_m_tokens=2.5, output_per_m_tokens=10.0),
        "gpt-4o-mini": Price(input_per_m_tokens=0.15, output_per_m_tokens=0.6),
    }


class AgentPod(ApiModel):
    """The pod of one design session on a cluster (an agent Job)."""

    image: NonEmptyStr | None = Field(
        default=None,
        description="Container image of the session's agent and check pods. Unset: the "
        "operator's default, GENESYS_AGENT_IMAGE (the Helm value images.agent), else "
        "genesys-agent:<operator version>.",
    )
    cpu: Quantity = Field(default="2", description="CPU request (the sandboxed checks run here).")
    memory: Quantity = Field(default="8Gi", description="Memory request and limit.")
    deadline_seconds: int = Field(
        default=21_600,
        ge=60,
        le=604_800,
        description="activeDeadlineSeconds of the Job; a session past it is failed.",
    )
    backoff_limit: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Pod retries of the Job; a retried session resumes where it stopped.",
    )
    runtime_class_name: DnsSubdomain | None = Field(
        default=None,
        description="RuntimeClass of the agent pods (e.g. gvisor or kata); design code runs in "
        "check pods instead (checks.runtimeClassName). Unset: the cluster's default runtime.",
    )


class Agents(ApiModel):
    """The LLM agents: endpoint, credentials, models, prices and budgets."""

    offline: bool = Field(
        default=False,
        description="Use the offline proposer (genetic programming without an LLM); no endpoint "
        "or API key is needed.",
    )
    base_url: Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN)] | None = Field(
        default=None,
        description="OpenAI-compatible endpoint, e.g. http://vllm:8000/v1. Unset: the client's "
        "default (OPENAI_BASE_URL or OpenAI).",
    )
    api_key_secret: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding the API key. Required on a cluster unless offline; on one "
        "machine (scheduler local) apiKeyEnv is used.",
    )
    api_key_env: Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)] = Field(
        default="OPENAI_API_KEY",
        description="On one machine (genesys run), the environment variable holding the key.",
    )
    models: RoleModels = Field(default_factory=RoleModels, description="Per-role model lists.")
    prices: dict[str, Price] = Field(
        default_factory=_default_prices, description="USD prices per model name."
    )
    max_usd_per_session: float | None = Field(
        default=50.0, gt=0, description="Hard USD cap per design session. Unset: no cap."
    )
    max_usd_per_run: float | None = Field(
        default=None, gt=0, description="Hard USD cap for the whole run. Unset: no cap."
    )
    timeout_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="Timeout of one LLM call."
    )
    max_retries: int = Field(
        default=5, ge=0, le=50, description="Retries with backoff on 429, 5xx and timeouts."
    )
    max_tokens: int = Field(
        default=4096, ge=256, le=1_000_000, description="Completion-token limit of one call."
    )
    model_options: dict[str, ModelOptions] = Field(
        default_factory=dict,
        description="Request options per model name (token-limit field, temperature, "
        "reasoning effort, extra body fields). A model not named here gets the defaults of "
        "ModelOptions.",
    )
    pod: AgentPod = Field(
        default_factory=AgentPod, description="Agent Job settings (cluster runs only)."
    )
    embedding_model: NonEmptyStr | None = Field(
        default=None,
        description="Embedding model for the knowledge base's similarity search. Unset: BM25 "
        "(pure Python, no endpoint needed).",
    )
    paper_search: Literal["off", "semantic-scholar", "arxiv"] = Field(
        default="off",
        description="External paper search during proposals (needs network access).",
    )
    paper_search_url: Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN)] | None = Field(
        default=None, description="Base URL of the paper-search API. Unset: its public URL."
    )


# ------------------------------------------------------------------------------------- selection


class Selection(ApiModel):
    """Quadrant selection of parents and promotions (paper defaults)."""

    design_quantile: Probability = Field(
        default=0.25, description="Top fraction by rank counted as good (paper: 0.25)."
    )
    confidence_quantile: Probability = Field(
        default=0.25, description="Top fraction by confidence counted as high (paper: 0.25)."
    )
    explore_probability: Probability = Field(
        default=0.2, description="Probability of exploring instead of exploiting (paper: 0.2)."
    )
    noise: Probability = Field(
        default=0.05, description="Background noise of the quadrant choice (paper: 0.05)."
    )
    restart_probability: Probability = Field(
        default=0.05, description="Probability a parent restarts from a seed (paper: 0.05)."
    )
    seed_warmup: int = Field(
        default=10,
        ge=0,
        le=100_000,
        description="Until this many designs are verified the first parent is a seed (paper: 10).",
    )
    baseline_margin: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="A metric column is dropped when no design beats random by this (paper: 0.02).",
    )
    proposal_rating_weight: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Weight of the proposal-rating/5 column in the ranking matrix.",
    )
    ties: Literal["noise", "exact"] = Field(
        default="noise",
        description="How the ranking treats small differences. noise: a difference between "
        "two designs inside the noise floor measured with `genesys noise`, or for a task's "
        "accuracy inside the two scores' standard errors over the items (tieSigmas standard "
        "deviations of a difference either way) is a tie, and a task no design scores above "
        "random by tieSigmas standard errors is dropped; exact: every difference counts (the "
        "paper's rule).",
    )
    tie_sigmas: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="With ties: noise, differences up to this many standard deviations of a "
        "difference are ties: of two trainings (the noise floor times the square root of 2), "
        "or of two accuracies (the root of the sum of their squared standard errors).",
    )


# ---------------------------------------------------------------------------------------- checks


class Checks(ApiModel):
    """Checker settings and thresholds (paper defaults)."""

    forward_batch_size: int = Field(default=2, ge=1, le=64, description="Forward check batch.")
    forward_length: int = Field(
        default=2048, ge=1, le=1_048_576, description="Forward check sequence length (paper: 2048)."
    )
    causality_length: int = Field(
        default=128,
        ge=2,
        le=65_536,
        description="Longest sequence of the exhaustive causality probe, where every position "
        "is a cut; its length is drawn at random from half of this to all of it, so a design "
        "cannot special-case it (the paper checks 100 positions). Random cuts over the rung's "
        "whole context are probed as well.",
    )
    effectiveness_steps: int = Field(
        default=10, ge=2, le=10_000, description="Training steps of the effectiveness check."
    )
    max_loss: float = Field(default=1e4, gt=0, description="Loss above this is an error.")
    max_grad_norm: float = Field(default=1e4, gt=0, description="Gradient norm above is an error.")
    time_ratio_error: float = Field(default=3.0, ge=1, description="Error at time x reference.")
    memory_ratio_error: float = Field(default=4.0, ge=1, description="Error at memory x ref.")
    flops_ratio_error: float = Field(default=3.0, ge=1, description="Error at FLOPs x ref.")
    loss_ratio_error: float = Field(default=3.0, ge=1, description="Error at loss x ref.")
    time_ratio_warning: float = Field(default=1.5, ge=1, description="Warning at time x ref.")
    memory_ratio_warning: float = Field(default=2.0, ge=1, description="Warning at memory x ref.")
    flops_ratio_warning: float = Field(default=1.5, ge=1, description="Warning at FLOPs x ref.")
    loss_ratio_warning: float = Field(default=1.5, ge=1, description="Warning at loss x ref.")
    param_tolerance: float = Field(
        default=0.2, gt=0, lt=1, description="Parameter fit to the rung's reference, +-fraction."
    )
    sandbox_timeout_seconds: float = Field(
        default=900.0, gt=0, le=86_400, description="Wall-clock limit of one sandboxed check."
    )
    sandbox_memory: Quantity = Field(
        default="8Gi", description="Address-space limit of one sandboxed check."
    )
    runtime_class_name: DnsSubdomain | None = Field(
        default=None,
        description="RuntimeClass of the check pods, which run design code on a cluster (e.g. "
        "gvisor or kata); unset: the cluster's default runtime.",
    )


# ---------------------------------------------------------------------------------- verification


class DataSubset(ApiModel):
    """One part of a dataset mixture."""

    name: NonEmptyStr = Field(description="Subset (config) name of the dataset.")
    weight: float = Field(default=1.0, ge=0, description="Relative mixture weight.")


SMOLLM_SUBSETS = (
    "cosmopedia-v2",
    "python-edu",
    "fineweb-edu-dedup",
    "open-web-math",
    "deepmind-math-small",
    "stackoverflow-clean",
)


def _default_subsets() -> list[DataSubset]:
    return [DataSubset(name=name) for name in SMOLLM_SUBSETS]


class Data(ApiModel):
    """Pre-training data and tokenizer."""

    dataset: NonEmptyStr = Field(
        default="HuggingFaceTB/smollm-corpus",
        description="Hugging Face dataset name, or 'builtin' for the offline corpus of the "
        "embedded default.",
    )
    subsets: list[DataSubset] = Field(
        default_factory=_default_subsets, description="Mixture of dataset subsets."
    )
    shards: str | None = Field(
        default=None,
        description="URI of prepared token shards (s3://bucket/prefix or a local path); when set, "
        "training reads them instead of the dataset.",
    )
    tokenizer: NonEmptyStr = Field(
        default="meta-llama/Llama-2-7b-hf",
        description="Tokenizer: a Hugging Face name or path, 'byte', or 'bpe:<vocab size>'.",
    )
    vocab_size: int = Field(
        default=32000, ge=2, le=1_000_000, description="Vocabulary size (paper: 32000)."
    )
    synthetic_fraction: Probability = Field(
        default=0.0,
        description="Fraction of training tokens from synthetic recall/copy/induction tasks.",
    )


PAPER_EVAL_TASKS = (
    "lambada_openai",
    "hellaswag",
    "piqa",
    "arc_easy",
    "arc_challenge",
    "winogrande",
    "openbookqa",
    "sciq",
    "mathqa",
    "swag",
    "wsc273",
    "qa4mre",
    "glue",
    "blimp",
    "inverse_scaling",
)


class Resources(ApiModel):
    """Resources of one training pod."""

    gpus: int = Field(default=1, ge=0, le=64, description="GPUs per pod (nvidia.com/gpu).")
    cpu: Quantity = Field(default="8", description="CPU request.")
    memory: Quantity = Field(default="64Gi", description="Memory request and limit.")
    shm_size: Quantity = Field(default="16Gi", description="Size of /dev/shm.")


class Training(ApiModel):
    """Optimiser schedule and training guards (paper defaults)."""

    min_lr_ratio: float = Field(
        default=0.1, ge=0, le=1, description="Cosine decay floor as a fraction of peak lr."
    )
    warmup_fraction: float = Field(
        default=0.02, ge=0, lt=1, description="Fraction of steps of linear warm-up (paper: 2%)."
    )
    weight_decay: float = Field(
        default=0.1, ge=0, le=10, description="AdamW weight decay (not in the paper; nanoGPT's)."
    )
    grad_clip: float = Field(
        default=1.0, ge=0, le=1e4, description="Gradient-norm clip; 0 disables."
    )
    max_loss: float = Field(default=1e4, gt=0, description="Loss above this stops the run.")
    max_grad_norm: float = Field(default=1e4, gt=0, description="Grad norm above stops the run.")
    checkpoint_every_minutes: float = Field(
        default=10.0, gt=0, le=1440, description="Checkpoint to the store this often."
    )


class Verification(ApiModel):
    """Verification by pre-training and evaluation, and where training jobs run."""

    data: Data = Field(default_factory=Data, description="Pre-training data and tokenizer.")
    eval_tasks: list[NonEmptyStr] = Field(
        default_factory=lambda: list(PAPER_EVAL_TASKS),
        description="lm-eval task names; local task files for the embedded default.",
    )
    eval_limit: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Items evaluated per task (the first N of each). Unset: every item.",
    )
    scheduler: Literal["local", "kubernetes"] = Field(
        default="kubernetes",
        description="local: TorchX local_cwd on this machine (genesys run); kubernetes: plain "
        "batch/v1 Jobs through TorchX (Kueue-ready with queueName).",
    )
    image: NonEmptyStr | None = Field(
        default=None,
        description="Container image of training pods. Unset: the operator's default, "
        "GENESYS_TRAINER_IMAGE (the Helm value images.trainer), else "
        "genesys-trainer:<operator version>.",
    )
    resources: Resources = Field(default_factory=Resources, description="Per-pod resources.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="nodeSelector of training pods."
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Affinity of training pods (a Kubernetes Affinity: nodeAffinity, "
        "podAffinity, podAntiAffinity).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Tolerations of training pods."
    )
    priority_class_name: DnsSubdomain | None = Field(
        default=None, description="priorityClassName of training pods."
    )
    runtime_class_name: DnsSubdomain | None = Field(
        default=None,
        description="RuntimeClass of the training pods, which run design code (e.g. gvisor or "
        "kata).",
    )
    queue_name: DnsSubdomain | None = Field(
        default=None,
        description="Kueue LocalQueue of training Jobs: they are created suspended with the "
        "queue-name label, and Kueue admits them.",
    )
    max_parallel_jobs_per_rung: int = Field(
        default=8, ge=1, le=10_000, description="Training jobs running at once per rung."
    )
    max_pending_jobs: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Training jobs that may wait to be scheduled at once, every rung together "
        "(on a cluster: pods not yet placed on a node, or Jobs Kueue has not admitted). No new "
        "training job starts while this many wait, so demand grows as fast as the cluster "
        "scales.",
    )
    capacity_timeout_seconds: int | None = Field(
        default=None,
        ge=10,
        le=30 * 86_400,
        description="A training job whose pod has waited this long for capacity is cancelled "
        "and recorded as an error of its verification. Unset: it waits as long as it takes.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=20, description="Retries of a failed training job; then recorded."
    )
    termination_grace_period_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="On a cluster: the seconds a training pod has after SIGTERM (a preemption, a "
        "node drain, a spot reclaim) to finish its step and write its checkpoint to the store. "
        "A pod disrupted that way is recreated, resumes from the checkpoint, and does not count "
        "against maxRetries.",
    )
    training: Training = Field(default_factory=Training, description="Optimiser and guards.")


# --------------------------------------------------------------------------------------- storage


class S3Storage(ApiModel):
    """An S3 (or S3-compatible) bucket as the artifact store."""

    bucket: Annotated[
        str, StringConstraints(min_length=3, max_length=63, pattern=S3_BUCKET_PATTERN)
    ] = Field(description="Bucket name.")
    prefix: str = Field(default="", description="Key prefix inside the bucket.")
    endpoint_url: Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN)] | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, moto)."
    )
    region: str = Field(default="us-east-1", description="Region of the bucket.")
    credentials_secret: DnsSubdomain | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Unset: the pod's "
        "ambient credentials (IRSA, instance profile).",
    )


class LocalStorage(ApiModel):
    """A local directory as the artifact store (the embedded default)."""

    path: NonEmptyStr = Field(
        default=".genesys", description="Directory, relative to the working directory."
    )


class Storage(ApiModel):
    """Artifact store: exactly one of s3 or local. Unset: local ./.genesys."""

    s3: S3Storage | None = Field(default=None, description="S3 artifact store.")
    local: LocalStorage | None = Field(default=None, description="Local-directory store.")
    retention: Literal["keep", "delete"] = Field(
        default="keep",
        description="On deleting the DiscoveryRun: keep its artifacts in the store, or delete "
        "them (only when the store prefix is bound to this run).",
    )
    resume_from: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="metadata.uid of an earlier run whose archive, kept at this run's store "
        "prefix (runs/<namespace>/<name>), this run adopts and continues. Unset: a prefix that "
        "holds another run's archive is refused (cluster runs only).",
    )


# ------------------------------------------------------------------------------------------ spec


class DiscoveryRunSpec(ApiModel):
    """What to discover and how: ladder, sessions, agents, selection, checks, verification."""

    ladder: Ladder = Field(default_factory=Ladder, description="The ladder of scales.")
    sessions: Sessions = Field(default_factory=Sessions, description="Design sessions.")
    agents: Agents = Field(default_factory=Agents, description="LLM agents.")
    selection: Selection = Field(default_factory=Selection, description="Parent/promotion choice.")
    checks: Checks = Field(default_factory=Checks, description="Design checkers.")
    verification: Verification = Field(
        default_factory=Verification, description="Pre-training and evaluation."
    )
    storage: Storage = Field(default_factory=Storage, description="Artifact store.")
    suspend: bool = Field(
        default=False, description="Pause: start nothing new; running work finishes."
    )
    deadline: datetime | None = Field(
        default=None, description="Finish (reason DeadlinePassed) at this time (RFC 3339)."
    )
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="Random seed of every stochastic choice."
    )


# ---------------------------------------------------------------------------------------- status


class Phase(enum.StrEnum):
    """Lifecycle phase of a DiscoveryRun.

    The engine decides every phase but ``SpecInvalid`` (:func:`genesys.engine.phase.decide_phase`);
    the operator sets ``SpecInvalid`` for a spec that does not validate.
    """

    PENDING = "Pending"
    PROPOSING = "Proposing"
    VERIFYING = "Verifying"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SPEC_INVALID = "SpecInvalid"

    def is_terminal(self) -> bool:
        """True when the run does no more work unless its spec changes (:data:`TERMINAL_PHASES`)."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES: frozenset[Phase] = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.SPEC_INVALID})
"""The phases in which a run does no more work unless its spec changes: the one definition.

``Succeeded`` and ``Failed`` hold a result that a later spec edit never changes; ``SpecInvalid``
holds none, and the next spec edit is validated again. A phase is a ``str``, so a status's raw
``phase`` string can be looked up here too.
"""


class FinishReason(enum.StrEnum):
    """Why a run finished; ``Error`` and ``SessionsFailed`` end it ``Failed``, others ``Succeeded``.

    ``Error``: the run had nothing left to do and not one verification succeeded (no design, not
    even a seed, has a fitness), so it has no result to rank (see :mod:`genesys.engine.phase`).
    ``SessionsFailed``: ``sessions.maxConsecutiveFailures`` design sessions in a row failed.
    """

    BUDGETS_SPENT = "BudgetsSpent"
    USD_CAP_REACHED = "UsdCapReached"
    DEADLINE_PASSED = "DeadlinePassed"
    MAX_DESIGNS_REACHED = "MaxDesignsReached"
    SESSIONS_FAILED = "SessionsFailed"
    ERROR = "Error"


class RungStatus(ApiModel):
    """Budget accounting of one rung."""

    name: str = Field(description="Rung name.")
    budget: int = Field(ge=0, description="Designs to verify at this rung.")
    used: int = Field(default=0, ge=0, description="Verifications finished (passed or failed).")
    running: int = Field(default=0, ge=0, description="Verifications in progress.")


class DesignCounts(ApiModel):
    """Designs of the run by state."""

    total: int = Field(default=0, ge=0, description="All designs.")
    proposing: int = Field(default=0, ge=0, description="In a design session.")
    implemented: int = Field(default=0, ge=0, description="Implemented, passing every checker.")
    verified: int = Field(default=0, ge=0, description="Verified at one rung or more.")
    rejected: int = Field(default=0, ge=0, description="Rejected, with a recorded reason.")
    failed: int = Field(default=0, ge=0, description="Failed sessions or verifications.")


class Spend(ApiModel):
    """Resources spent so far."""

    llm_usd: float = Field(default=0.0, ge=0, description="LLM cost in USD.")
    gpu_hours: float = Field(default=0.0, ge=0, description="GPU-hours of training jobs.")


class DiscoveryRunStatus(ApiModel):
    """Observed state of a DiscoveryRun; written only by the operator."""

    phase: Phase = Field(default=Phase.PENDING, description="Lifecycle phase.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Conditions (Kubernetes API conventions)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last reconciled."
    )
    current_rung: str | None = Field(default=None, description="Highest rung in progress.")
    rungs: list[RungStatus] = Field(default_factory=list, description="Per-rung budgets.")
    designs: DesignCounts = Field(default_factory=DesignCounts, description="Design counts.")
    best_design: str | None = Field(default=None, description="Name of the best design.")
    best_fitness: float | None = Field(default=None, description="Fitness of the best design.")
    headline: str | None = Field(
        default=None,
        description="The best discovered design against the best seed on validation loss, with "
        "the interval of the measured noise floor, and whether it beats the seeds.",
    )
    spend: Spend = Field(default_factory=Spend, description="LLM USD and GPU-hours spent.")
    start_time: datetime | None = Field(default=None, description="When the run started.")
    finish_time: datetime | None = Field(default=None, description="When the run finished.")
    finish_reason: FinishReason | None = Field(default=None, description="Why it finished.")


class DiscoveryRun(ApiModel):
    """A DiscoveryRun: one architecture-discovery run."""

    api_version: Literal["genesys.dev/v1alpha1"] = Field(
        default="genesys.dev/v1alpha1", description="genesys.dev/v1alpha1."
    )
    kind: Literal["DiscoveryRun"] = Field(default="DiscoveryRun", description="DiscoveryRun.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: DiscoveryRunSpec = Field(default_factory=DiscoveryRunSpec, description="Desired run.")
    status: DiscoveryRunStatus | None = Field(default=None, description="Observed state.")


__all__ = [
    "PAPER_EVAL_TASKS",
    "SMOLLM_SUBSETS",
    "TERMINAL_PHASES",
    "AgentPod",
    "Agents",
    "Checks",
    "Data",
    "DataSubset",
    "DesignCounts",
    "DiscoveryRun",
    "DiscoveryRunSpec",
    "DiscoveryRunStatus",
    "FinishReason",
    "GeneticOperators",
    "Ladder",
    "LocalStorage",
    "ModelShape",
    "Phase",
    "PresetName",
    "Price",
    "Resources",
    "RoleModels",
    "Rung",
    "RungStatus",
    "S3Storage",
    "Selection",
    "Sessions",
    "Spend",
    "Storage",
    "Toleration",
    "Training",
    "Verification",
    "WeightedModel",
]
