"""Scenario 10: every message durable. A feed where every message is for an enrolled subject
(a backlog replayed by the LIS after an outage looks like this), over one and several
connections: each message is committed to the store (``synchronous=FULL``) before its ACK,
the listener's committer taking what all connections have waiting in one commit.

Baseline: a bare server that appends each message to a file and fsyncs it before its ACK
(:class:`adapter.bench.mllp_peer.FsyncServer`): the durable transport's ceiling on this disk,
one fsync per message. Sent in interleaved rounds, as scenario 1.
"""

from __future__ import annotations

from adapter.bench.env import environment
from adapter.bench.mllp_peer import FsyncServer
from adapter.bench.results import Row
from adapter.bench.scenarios.common import Context, Listener, send
from adapter.intake import Intake

ROUNDS = 3
_TARGETS = {1: 0.5, 4: 1.0}  # issue 16: >= 0.5x with one connection, >= 1x with four


def run(ctx: Context) -> list[Row]:
    return [_one(ctx, connections) for connections in (1, ctx.sizes.connections)]


def _one(ctx: Context, connections: int) -> Row:
    count = ctx.sizes.durable
    share = -(-count // ROUNDS)
    bare_seconds = our_seconds = 0.0
    acked = 0
    folder = ctx.work / f"durable-{connections}"
    with environment(folder) as env, FsyncServer(folder / "fsync.log") as bare:
        intake = Intake(env.store, env.registry)
        with Listener(intake) as port:
            for first in range(0, count, share):
                size = min(share, count - first)
                bare_seconds += send(bare.port, connections, size, first=first, enrolled=1.0)[
                    "seconds"
                ]
                ours = send(port, connections, size, first=first, enrolled=1.0)
                our_seconds += ours["seconds"]
                acked += ours["accepted"]
        kept = intake.counts.kept
    rate, base_rate = count / our_seconds, count / bare_seconds
    target = _TARGETS.get(connections, 1.0)
    return Row.make(
        "10 durable",
        f"{count:,} enrolled msgs, {connections} conn.",
        rate,
        base_rate,
        "msg/s",
        f">= {target:g}x append+fsync",
        rate >= target * base_rate and acked == count and kept == count,
        acked=acked,
        committed=kept,
        rounds=ROUNDS,
    )
