"""CLI commands for interface engineers testing MLLP links: ``lis-simulator`` (a LIS that
answers result queries) and ``mllp-send`` (send messages to a listener, print the ACKs)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import click

from adapter.cli._common import FILES, cli_errors, message_files
from adapter.errors import MessageError, SourceError
from adapter.parse.decode import split_messages
from adapter.sources.client import MllpClient
from adapter.sources.config import Tls
from adapter.sources.hl7v2 import read_header
from adapter.sources.lis_simulator import LisSimulator


@click.command("lis-simulator")
@click.option(
    "--feed",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder of ORU^R01 *.hl7 files to answer from (e.g. a simulate-lis feed); "
    "files added later are picked up.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2576,
    show_default=True,
    help="TCP port; 0 picks a free one (the ready line says which).",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Messages per answer before a DSC continuation pointer (0: all in one).",
)
def lis_simulator(feed: Path, host: str, port: int, page_size: int) -> None:
    """Run a small LIS that answers result queries over MLLP, until Ctrl-C.

    QRY^R02 is answered with ORF^R04 and QBP (QPD-3 patient, QPD-4/5 window) with RSP:
    the results of the asked patient reported in the window, from the feed's messages.
    Point sources.query at it to try the LIS query pull.

    Example: trialbridge lis-simulator --feed /tmp/feed --port 2576
    """
    simulator = LisSimulator(feed, host=host, port=port, page_size=page_size)

    async def run() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(simulator.serve(stop))
        port = await asyncio.to_thread(simulator.wait_ready)
        click.echo(f"LIS simulator listening on {host}:{port} (Ctrl-C to stop)")
        try:
            await serving
        finally:
            stop.set()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@click.command("mllp-send")
@FILES
@click.option("--host", default="127.0.0.1", show_default=True, help="The listener's address.")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="The listener's port.")
@click.option(
    "--ca",
    "--tls-ca",
    "ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use TLS and trust this CA (PEM) for the listener's certificate.",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Client certificate (PEM) to present, for a listener that asks for one "
    "(mutual TLS); needs --key. Implies TLS.",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client certificate's private key (PEM).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per ACK.")
def mllp_send(
    files: tuple[Path, ...],
    host: str,
    port: int,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    timeout: float,
) -> None:
    """Send HL7 messages to an MLLP listener on one connection and print each ACK.

    Files may hold several messages or an FHS/BHS batch: each message goes in a frame of
    its own, and the next one only after the ACK. Prints MSA-1 (AA, AE, AR), MSA-2 and
    MSA-3 per message; exits 1 when any message was not accepted (AA).

    With --ca (and --cert/--key for mutual TLS) the connection uses TLS.

    Example: trialbridge mllp-send msg.hl7 --port 2575 --ca ca.pem --cert lis.pem --key lis.key
    """
    if (cert is None) != (key is None):
        raise click.UsageError("--cert and --key go together")
    try:
        context = Tls(cert, key, ca).client_context() if ca or cert else None
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(f"cannot load the TLS files (--ca/--cert/--key): {exc}") from exc
    refused = 0
    with cli_errors(), MllpClient(host, port, timeout=timeout, tls=context) as client:
        for path in message_files(files):
            for number, payload in enumerate(_messages(path), start=1):
                code, line = _acknowledged(client.request(payload))
                click.echo(f"{path.name}#{number}: {line}")
                refused += code != "AA"
    if refused:
        raise click.ClickException(f"{refused} message(s) were not accepted")


def _messages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    try:
        return split_messages(data)
    except MessageError:
        return [data]  # sent as is: the listener says what is wrong with it


def _acknowledged(ack: bytes) -> tuple[str, str]:
    """MSA-1 and the line to print: MSA-1, MSA-2, then for an error ERR-2 (where) and
    ERR-3 (the HL7 table 0357 code) in brackets, and MSA-3 (the text)."""
    header = read_header(ack)
    if header is None:
        raise SourceError("the listener answered with something that is not an HL7 ACK")
    segments = {s[:3]: s.split(header.separator) for s in ack.decode("latin-1").split("\r")}
    msa = segments.get("MSA")
    if msa is None:
        raise SourceError("the listener's ACK has no MSA segment")
    msa += [""] * 4
    error = segments.get("ERR", []) + [""] * 4
    where = " ".join(p for p in (error[2], error[3].split(header.encoding[0])[0]) if p)
    parts = [msa[1], msa[2], f"[{where}]" if where else "", msa[3]]
    return msa[1], " ".join(p for p in parts if p)


COMMANDS: list[click.Command] = [lis_simulator, mllp_send]
