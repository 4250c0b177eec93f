"""The short chaos run: the whole system on private servers, a few faults, a clean ledger."""

from __future__ import annotations

import dataclasses

import pytest

from chaos.run import SHORT, Options, run

pytestmark = pytest.mark.slow


async def test_short_run_with_faults_leaves_a_clean_ledger():
    options = dataclasses.replace(Options(seed=20240611), **SHORT)  # type: ignore[arg-type]
    outcome = await run(options)

    assert outcome.drained_in is not None, outcome.ledger.format()
    assert outcome.ok, outcome.ledger.format()
    assert len(outcome.faults_done) == len(SHORT["faults"])  # type: ignore[arg-type]
    lines = outcome.ledger.lines
    # The workload really went through every path.
    assert lines["webhook statuses"].expected > 500
    assert lines["webhook messages"].expected > 500
    assert lines["export contacts"].expected == SHORT["contacts"]
    assert outcome.sim_stats["requests"] > 50  # type: ignore[operator]  # the pullers pulled
    assert outcome.ledger.queued == 0
    assert all(code == 0 for code in outcome.exit_codes.values()), outcome.exit_codes
