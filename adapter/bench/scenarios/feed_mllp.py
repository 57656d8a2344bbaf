"""Scenario 1: the hospital feed over MLLP (1% enrolled), one and several connections,
against a bare framing-and-ACK server. The sender is a separate process. With several
connections, a third baseline: the bare server doing our per-message work inline
(:class:`~adapter.bench.mllp_peer.WorkServer`), to show what these cores allow that work.

The feed is sent in rounds, the bare server's and TrialBridge's interleaved (bare, ours,
bare, ours, ...), each round new messages to the same listener and store: on a shared
machine the load drifts within a minute, and interleaving gives both the same weather. The
rates are totals over the rounds (all messages / all seconds).
"""

from __future__ import annotations

from adapter.bench.env import environment
from adapter.bench.mllp_peer import BareServer, WorkServer
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, Listener, send
from adapter.intake import Intake

ROUNDS = 3


def run(ctx: Context) -> list[Row]:
    rows = []
    for connections in (1, ctx.sizes.connections):
        rows.extend(_one(ctx, connections, worked=connections > 1))
    return rows


def _one(ctx: Context, connections: int, *, worked: bool) -> list[Row]:
    """The bare server and ours; with ``worked``, also the bare server doing our
    per-message work (:class:`WorkServer`), in the same interleaved rounds."""
    count = ctx.sizes.feed
    share = -(-count // ROUNDS)  # messages per round (the last may be fewer)
    bare_seconds = our_seconds = work_seconds = 0.0
    acked = 0
    with (
        environment(ctx.work / f"mllp-{connections}") as env,
        BareServer() as bare,
        WorkServer(Intake(env.store, env.registry)) as work,
    ):
        intake = Intake(env.store, env.registry)
        with Listener(intake) as port:
            for first in range(0, count, share):
                size = min(share, count - first)
                bare_seconds += send(bare.port, connections, size, first=first)["seconds"]
                ours = send(port, connections, size, first=first)
                our_seconds += ours["seconds"]
                acked += ours["accepted"]
                if worked:
                    work_seconds += send(work.port, connections, size, first=first)["seconds"]
        kept = intake.counts.kept
    rate, base_rate = count / our_seconds, count / bare_seconds
    rows = [_row(count, connections, rate, base_rate, acked, kept)]
    if worked:
        rows.append(
            Row.make(
                "1 MLLP feed",
                f"{count:,} msgs, {connections} conn., vs bare + our work per message",
                rate,
                count / work_seconds,
                "msg/s",
                "report",
                None,
                rounds=ROUNDS,
            )
        )
    return rows


def _row(count: int, connections: int, rate: float, base_rate: float, acked: int, kept: int) -> Row:
    return Row.make(
        "1 MLLP feed",
        f"{count:,} msgs, {connections} conn.",
        rate,
        base_rate,
        "msg/s",
        ">= 0.5x bare",
        rate >= 0.5 * base_rate and acked == count,
        acked=acked,
        committed=kept,
        rounds=ROUNDS,
    )
