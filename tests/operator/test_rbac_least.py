"""The chart's RBAC grants nothing the operator does not use (the other half of the RBAC check).

The operator tests' fixture asserts, after each test, that the chart grants every request the
operator sent. This module, collected after them, asserts the converse over the whole suite:
every (apiGroup, resource, verb) the chart's ClusterRole grants with its default values was
used by the operator in some test. It needs every other operator test in the same pytest run,
passed; otherwise it skips and says why (a partial run cannot tell an unused grant from an
untested one).
"""

from __future__ import annotations

import pytest

from support.rbac import OUTCOMES, SEEN_CALLS, chart_rules, rule_terms

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FALLBACK_ONLY = {("genesys.dev", "discoveryruns", "get")}
"""Grants used only on a path no test can time: a run is read from the API server only when
a Job event reaches an operator process before any event of the run itself (a restart)."""


def test_the_chart_grants_nothing_the_operator_did_not_use(request: pytest.FixtureRequest) -> None:
    session = request.session
    # the images test runs the same operator from its image; the suite without it is complete
    others = [
        item.nodeid
        for item in session.items
        if "tests/operator/" in item.nodeid
        and item.nodeid != request.node.nodeid
        and item.get_closest_marker("images") is None
    ]
    outcomes = session.stash.get(OUTCOMES, {})
    not_passed = [node for node in others if outcomes.get(node) != "passed"]
    if not others or not_passed:
        pytest.skip(f"needs the whole operator suite passed in this run; not: {not_passed[:3]}")
    seen = session.stash.get(SEEN_CALLS, set())
    unused = sorted(rule_terms(chart_rules()) - seen - FALLBACK_ONLY)
    assert not unused, f"the chart grants what no operator test used: {unused}"
