"""Scenario 1: the hospital feed over MLLP (1% enrolled), one and several connections,
against a bare framing-and-ACK server. The sender is a separate process."""

from __future__ import annotations

from adapter.bench.env import environment
from adapter.bench.mllp_peer import BareServer
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, Listener, send
from adapter.intake import Intake


def run(ctx: Context) -> list[Row]:
    rows = []
    for connections in (1, ctx.sizes.connections):
        rows.append(_one(ctx, connections))
    return rows


def _one(ctx: Context, connections: int) -> Row:
    count = ctx.sizes.feed
    with BareServer() as bare:
        baseline = send(bare.port, connections, count)
    with environment(ctx.work / f"mllp-{connections}") as env:
        intake = Intake(env.store, env.registry)
        with Listener(intake) as port:
            ours = send(port, connections, count)
        kept = intake.counts.kept
    rate, base_rate = count / ours["seconds"], count / baseline["seconds"]
    return Row.make(
        "1 MLLP feed",
        f"{count:,} msgs, {connections} conn.",
        rate,
        base_rate,
        "msg/s",
        ">= 0.5x bare",
        rate >= 0.5 * base_rate and ours["accepted"] == count,
        acked=ours["accepted"],
        committed=kept,
    )
