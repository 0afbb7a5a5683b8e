"""The proposal phase of an LLM design session: search, propose, review, refine.

The proposer runs ``sessions.searchRounds`` rounds of knowledge-base search (and paper search
when ``agents.paperSearch`` is on), then writes a structured proposal; in mutation mode it names
exactly one unit (or slot path) of the parent, which must exist. The reviewer sees the proposal,
similar earlier proposals and designs, and the siblings (same parents), and rates it 0-5. Below
``sessions.proposalPassRating`` (never shown to the agents) the proposal is refined with the
review, up to ``sessions.maxProposalAttempts`` proposals.

What it keeps in the session state (``state.json``): ``searches`` (one entry per search round:
round, queries, papers (the first paper-search failure, if any); then one ``{"results": ...}``
entry with everything found), ``proposals`` (proposal, review, rating, passed, one per
attempt) and, once one passes, ``proposal``, ``rating`` and ``status = "implementing"``.

What must stay true:

- a resumed session never searches again: the results are taken from ``state.searches``;
- a paper-search failure is reported once (progress, and ``papers`` of its round) and turns
  paper search off for the rest of the session; it never fails the session;
- the pass mark is never part of a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from genesys.agents import roles
from genesys.agents.context import SessionContext, unit_interface
from genesys.agents.knowledge import PaperSearchError, render_hits, search_papers
from genesys.agents.llm import extract_json
from genesys.agents.treeops import resolve_selection

OPERATOR_INSTRUCTIONS = {
    "mutation": "Mode: MUTATION. Improve the parent design by changing exactly one of "
    'its units (and what lies below it): name it in "selected_unit" (a unit name or a '
    "slot path such as block.seq_mixer). Every other unit stays as it is.",
    "crossover": "Mode: CROSSOVER. Combine the best ideas of the two parent designs into "
    "one new design; it starts empty and may reuse the parents' units.",
    "scratch": "Mode: FROM SCRATCH. Invent a new block design, a tree of units whose "
    "root block has child units.",
}
"""What the proposer is told about its genetic operator."""


def parents_text(ctx: SessionContext) -> str:
    """The parents as prompt text: title, tree and an excerpt of each one's proposal."""
    if not ctx.parents:
        return "No parent designs (design from scratch)."
    parts = []
    for pid, tree in ctx.parents.items():
        proposal = str(tree.metadata.get("proposal") or "")[:1500]
        excerpt = f"\n\nIts proposal (excerpt):\n{proposal}" if proposal else ""
        parts.append(f"Parent {pid}: {tree.metadata.get('title', '')}\n\n{tree.render()}{excerpt}")
    return "\n\n".join(parts)


def _proposer_context(ctx: SessionContext) -> str:
    query = " ".join(str(t.metadata.get("title", "")) for t in ctx.parents.values())
    earlier = ctx.knowledge.search(query or "language model block", k=3, kinds=("proposal",))
    return (
        f"{parents_text(ctx)}\n\nEarlier proposals of this run that look related "
        f"(do not repeat them):\n\n{render_hits(earlier)}"
    )


def _papers_text(ctx: SessionContext, query: str, paper_note: list[str]) -> str:
    """Papers for ``query`` as prompt text; "" (noting the failure once) when search fails."""
    agents = ctx.settings.agents
    try:
        papers = search_papers(query, source=agents.paper_search, base_url=agents.paper_search_url)
    except PaperSearchError as exc:
        paper_note.append(str(exc))
        ctx.progress(f"{ctx.session}: {exc}")
        return ""
    return "\nPapers:\n" + "\n".join(
        f"- {p.title} ({p.year}) {p.url}\n  {p.abstract[:400]}" for p in papers
    )


def _search(ctx: SessionContext, queries: list[str], paper_note: list[str]) -> str:
    """Knowledge-base hits (and papers, while paper search works) for each query."""
    blocks = []
    for query in queries:
        hits = ctx.knowledge.search(query, k=3)
        text = f"Query: {query}\n{render_hits(hits)}"
        if ctx.settings.agents.paper_search != "off" and not paper_note:
            text += _papers_text(ctx, query, paper_note)
        blocks.append(text)
    return "\n\n".join(blocks)


def _search_rounds(ctx: SessionContext, system: dict[str, str], context: str) -> str:
    """Run the search rounds (recording each in the state); everything they found."""
    state, rounds = ctx.state, ctx.settings.sessions.search_rounds
    results, paper_note = "", list[str]()
    for round_index in range(rounds):
        conversation = roles.messages(
            "proposer",
            "search",
            system,
            round=round_index + 1,
            rounds=rounds,
            context=context,
            results=results or "(no searches yet)",
        )
        queries = ctx.ask("proposer", conversation, roles.json_parser(roles.parse_queries))
        if not queries:
            break
        found = _search(ctx, queries, paper_note)
        results = f"{results}\n\n{found}".strip()
        state.searches.append(
            {"round": round_index + 1, "queries": queries, "papers": paper_note[:1]}
        )
        ctx.save()
    state.searches.append({"results": results})
    return results


def _proposal_parser(ctx: SessionContext) -> Callable[[str], roles.ProposalDoc]:
    mutation = ctx.operator == "mutation"
    parent = ctx.first_parent()

    def parse(text: str) -> roles.ProposalDoc:
        proposal = roles.ProposalDoc.from_json(extract_json(text), needs_selection=mutation)
        if mutation and parent is not None:
            resolve_selection(parent, proposal.selected_unit or "")  # ValueError if absent
        return proposal

    return parse


def _refinement(last: dict[str, Any]) -> list[dict[str, str]]:
    """The turns that ask the proposer to improve its last proposal after the review."""
    refine = roles.render(
        "proposer",
        "refine",
        proposal=roles.ProposalDoc(**last["proposal"]).render(),
        review=roles.Rating(**last["review"]).render(),
    )
    return [
        {"role": "assistant", "content": json.dumps(last["proposal"])},
        {"role": "user", "content": refine},
    ]


def _write_proposals(
    ctx: SessionContext, system: dict[str, str], context: str, results: str
) -> bool:
    """Propose and review until one passes or the attempts run out; True when one passed."""
    state, sessions = ctx.state, ctx.settings.sessions
    write = roles.messages(
        "proposer",
        "write",
        system,
        context=context,
        results=results or "(nothing searched)",
        selection_field=', and "selected_unit" (the one unit or slot path you change)'
        if ctx.operator == "mutation"
        else "",
    )
    parse = _proposal_parser(ctx)
    for _ in range(len(state.proposals), sessions.max_proposal_attempts):
        conversation = list(write)
        if state.proposals:
            conversation += _refinement(state.proposals[-1])
        proposal = ctx.ask("proposer", conversation, parse)
        verdict = review(ctx, proposal)
        passed = verdict.rating >= sessions.proposal_pass_rating
        state.proposals.append(
            {
                "proposal": proposal.to_json(),
                "review": asdict(verdict),
                "rating": verdict.rating,
                "passed": passed,
            }
        )
        ctx.progress(
            f"{ctx.session}: proposal {len(state.proposals)} "
            f"'{proposal.title}' rated {verdict.rating:g}"
        )
        if passed:
            state.proposal, state.rating, state.status = (
                proposal.to_json(),
                verdict.rating,
                "implementing",
            )
            ctx.save()
            return True
        ctx.save()
    return False


def propose(ctx: SessionContext) -> bool:
    """Search, propose, review and refine; True when a proposal passed the review."""
    system = {
        "operator_instructions": OPERATOR_INSTRUCTIONS[ctx.operator],
        "unit_interface": unit_interface(),
    }
    context = _proposer_context(ctx)
    if not ctx.state.searches:
        results = _search_rounds(ctx, system, context)
    else:
        results = next((s["results"] for s in ctx.state.searches if "results" in s), "")
    return _write_proposals(ctx, system, context, results)


def _siblings(ctx: SessionContext) -> str:
    """Designs and proposals with the same parents, as prompt lines."""
    parents = sorted(ctx.parent_ids)
    lines = []
    for document in ctx.knowledge.documents():
        same_parents = sorted(document.meta.get("parents") or []) == parents
        related = document.kind in ("design", "proposal") and bool(parents) and same_parents
        if related and document.id != f"proposal:{ctx.session}":
            lines.append(f"- [{document.id}] {document.title}: {document.text[:300]}")
    return "\n".join(lines[:8]) or "(none)"


def review(ctx: SessionContext, proposal: roles.ProposalDoc) -> roles.Rating:
    """The reviewer's verdict on ``proposal``."""
    query = f"{proposal.title} {proposal.design_plan}"
    similar = ctx.knowledge.search(
        query, k=4, kinds=("proposal", "design"), exclude=(f"proposal:{ctx.session}",)
    )
    conversation = roles.messages(
        "reviewer",
        "review",
        {},
        operator=ctx.operator,
        proposal=proposal.render(),
        parents=parents_text(ctx),
        similar=render_hits(similar),
        siblings=_siblings(ctx),
    )
    verdict: roles.Rating = ctx.ask(
        "reviewer", conversation, roles.json_parser(roles.Rating.from_json)
    )
    return verdict


__all__ = ["OPERATOR_INSTRUCTIONS", "parents_text", "propose", "review"]
