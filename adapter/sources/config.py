"""The ``sources:`` section of ``config/trialbridge.yaml``, validated into frozen values once.

Environment overrides arrive as strings (``TRIALBRIDGE_SOURCES_MLLP_PORT=2575``), so booleans
and numbers are read from text too. Unknown keys are refused: a typo must not silently leave
a source with its default.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from adapter.config import DEFAULT_CONFIG, ROOT, base_dir, config_section
from adapter.errors import ConfigError

DEFAULT_DROP = ROOT / "var" / "drop"
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024  # a day of a busy LIS is a few MB
DEFAULT_QUERY_NAME = "Z01^Lab results since^L"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


@dataclass(frozen=True, slots=True)
class Tls:
    """Certificate files (PEM). A server needs ``cert`` and ``key``; ``ca`` makes a server
    require client certificates signed by it, and a client verify the server with it."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    def server_context(self) -> ssl.SSLContext:
        if self.cert is None or self.key is None:
            raise ConfigError("TLS needs both tls_cert and tls_key")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.ca is not None:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True, slots=True)
class FileDropConfig:
    enabled: bool = False
    directory: Path = DEFAULT_DROP
    archive: Path | None = None  # default: <directory>/archive (a folder inside directory)
    error: Path | None = None  # default: <directory>/error (a folder inside directory)
    pattern: str = "*.hl7"
    complete_when: str = "stable"  # marker (NAME.done next to it: recommended) | stable
    marker_suffix: str = ".done"
    poll_seconds: float = 10.0
    max_files_per_poll: int = 200
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # larger files go to error/ unread
    settle_seconds: float = 120.0  # stable mode: a taken file stays this long, unchanged
    archive_days: float = 0.0  # 0: a taken file is deleted; N: kept in archive/ N days

    @property
    def archive_dir(self) -> Path:
        return self.archive or self.directory / "archive"

    @property
    def error_dir(self) -> Path:
        return self.error or self.directory / "error"


@dataclass(frozen=True, slots=True)
class MllpConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 2575
    tls: Tls | None = None
    # Limits. A frame over max_message_bytes is refused as it arrives (its bytes are not
    # kept), so it also caps what one connection holds; max_buffered_bytes caps all of them.
    max_message_bytes: int = 4 * 1024 * 1024
    half_frame_timeout_seconds: float = 30.0  # a started frame must end within this
    max_connections: int = 20
    max_buffered_bytes: int = 64 * 1024 * 1024  # half-received frames, all connections
    # Guard: who may connect. Beyond the loopback one of these (or allow_any) is required.
    allowed_peers: tuple[IPv4Network | IPv6Network, ...] = ()
    allow_any: bool = False
    batch_size: int = 200  # messages committed together at most
    application: str = "TRIALBRIDGE"  # MSH-3 of our ACKs when the message names no receiver
    facility: str = ""
    forced_charset: str | None = None  # default: lis.forced_charset

    @property
    def mutual_tls(self) -> bool:
        """Whether clients must present a certificate signed by ``tls_ca``."""
        return self.tls is not None and self.tls.ca is not None and self.tls.cert is not None

    def allows(self, address: str) -> bool:
        """Whether a peer at ``address`` may connect (always, with no allow-list)."""
        if not self.allowed_peers:
            return True
        try:
            peer = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(peer, IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped  # ::ffff:10.1.2.3 on a dual-stack socket
        return any(peer in network for network in self.allowed_peers)

    def exposure(self) -> str | None:
        """Why this listener must not start as configured: it listens beyond the loopback
        with neither mutual TLS nor an allow-list (nor an explicit ``allow_any``)."""
        if not self.enabled or is_loopback(self.host):
            return None
        if self.mutual_tls or self.allowed_peers or self.allow_any:
            return None
        return (
            f"sources.mllp.host {self.host or '(every interface)'} listens beyond the "
            "loopback, so anyone who reaches the port could write trial results: set "
            "sources.mllp.allowed_peers (the LIS's addresses, CIDR), or mutual TLS "
            "(tls_cert, tls_key and tls_ca: clients need a certificate signed by tls_ca), "
            "or allow_any: true to accept every peer on purpose"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``); every other name, and
    the empty host (every interface), counts as beyond the loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ip_address(host.strip()).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class QueryConfig:
    enabled: bool = False
    name: str = "lis-query"  # the source's name in the state store (watermarks)
    host: str = "127.0.0.1"
    port: int = 2576
    tls: Tls | None = None
    protocol: str = "qry"  # qry: QRY^R02 -> ORF^R04 | qbp: QBP^Z01 -> RSP^Z02
    version: str = "2.4"
    query_name: str = DEFAULT_QUERY_NAME  # QPD-1 for qbp
    application: str = "TRIALBRIDGE"
    facility: str = ""
    lis_application: str = ""
    lis_facility: str = ""
    authorities: tuple[str, ...] = ()  # only identifiers of these authorities (empty: all)
    poll_seconds: float = 300.0
    timeout_seconds: float = 30.0
    overlap_minutes: float = 5.0  # each query starts this long before the watermark
    max_pages: int = 100
    forced_charset: str | None = None
    where_subject: str = ""  # QRF-1 (qry); empty: lis_application, else LAB
    # The reconciliation pull (docs/operations/lis-query.md): every subject's whole window
    # (or the last reconcile_lookback_days) once every reconcile_every_hours (0: never),
    # on a grid anchored at reconcile_at (HH:MM, the study's time zone).
    reconcile_every_hours: float = 24.0
    reconcile_at: time = time(2, 0)
    reconcile_lookback_days: float = 0.0  # 0: from the subject's first visit window


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    file_drop: FileDropConfig = field(default_factory=FileDropConfig)
    mllp: MllpConfig = field(default_factory=MllpConfig)
    query: QueryConfig = field(default_factory=QueryConfig)


def load_sources_config(
    path: Path = DEFAULT_CONFIG, environ: Mapping[str, str] | None = None
) -> SourcesConfig:
    """The ``sources:`` section of ``path`` with environment overrides, validated."""
    return sources_config(config_section("sources", path, environ), where=str(path))


def sources_config(section: Mapping[str, Any], where: str = "sources") -> SourcesConfig:
    _known(section, {"file_drop", "mllp", "query"}, "sources", where)
    return SourcesConfig(
        file_drop=_file_drop(_Reader(section.get("file_drop"), "sources.file_drop", where)),
        mllp=_mllp(_Reader(section.get("mllp"), "sources.mllp", where)),
        query=_query(_Reader(section.get("query"), "sources.query", where)),
    )


def _file_drop(r: _Reader) -> FileDropConfig:
    r.only(FileDropConfig.__dataclass_fields__)
    complete = r.text("complete_when", "stable")
    if complete not in ("stable", "marker"):
        raise r.fail("complete_when", "must be 'stable' or 'marker'")
    config = FileDropConfig(
        enabled=r.flag("enabled"),
        directory=r.path("directory") or DEFAULT_DROP,
        archive=r.path("archive"),
        error=r.path("error"),
        pattern=r.text("pattern", "*.hl7"),
        complete_when=complete,
        marker_suffix=r.text("marker_suffix", ".done"),
        poll_seconds=r.number("poll_seconds", 10.0),
        max_files_per_poll=int(r.number("max_files_per_poll", 200, minimum=1)),
        max_file_bytes=int(r.number("max_file_bytes", DEFAULT_MAX_FILE_BYTES, minimum=1024)),
        settle_seconds=r.number("settle_seconds", 120.0),
        archive_days=r.number("archive_days", 0.0),
    )
    for key, folder in (("archive", config.archive_dir), ("error", config.error_dir)):
        _inside_drop(r, key, folder, config.directory)
    return config


def _inside_drop(r: _Reader, key: str, folder: Path, directory: Path) -> None:
    """archive/ and error/ are real folders inside the drop folder: files are moved there by
    rename (atomic, same file system), and never through a link to somewhere else."""
    real_parent = folder.parent.resolve()
    inside = directory.resolve()
    if real_parent != inside and not real_parent.is_relative_to(inside):
        raise r.fail(key, f"({folder}) must be a folder inside the drop folder ({directory})")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise r.fail(key, f"({folder}) must be a real folder, not a symbolic link or a file")


def _mllp(r: _Reader) -> MllpConfig:
    r.only({*MllpConfig.__dataclass_fields__, "tls_cert", "tls_key", "tls_ca"} - {"tls"})
    default = MllpConfig()
    config = MllpConfig(
        enabled=r.flag("enabled"),
        host=r.text("host", "127.0.0.1"),
        port=r.port("port", 2575),
        tls=r.tls(),
        max_message_bytes=r.whole("max_message_bytes", default.max_message_bytes, 1024),
        half_frame_timeout_seconds=r.number(
            "half_frame_timeout_seconds", default.half_frame_timeout_seconds, minimum=0.1
        ),
        max_connections=r.whole("max_connections", default.max_connections, 1),
        max_buffered_bytes=r.whole("max_buffered_bytes", default.max_buffered_bytes, 1024),
        allowed_peers=_networks(r, "allowed_peers"),
        allow_any=r.flag("allow_any"),
        batch_size=r.whole("batch_size", 200, 1),
        application=r.text("application", "TRIALBRIDGE"),
        facility=r.text("facility", ""),
        forced_charset=r.text("forced_charset", "") or None,
    )
    if config.tls is not None and config.tls.ca is not None and config.tls.cert is None:
        raise r.fail("tls_ca", "needs tls_cert and tls_key (the listener's own certificate)")
    if (exposed := config.exposure()) is not None:
        raise ConfigError(exposed, path=r.where)
    return config


def _networks(r: _Reader, key: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """A list of addresses or CIDR networks (a comma-separated string from the environment)."""
    value = r.value(key, [])
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise r.fail(key, "must be a list of addresses or networks, e.g. [10.20.0.0/24]")
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            message = f"holds {item!r}, which is not an address or a CIDR network"
            raise r.fail(key, message) from None
    return tuple(networks)


def _query(r: _Reader) -> QueryConfig:
    r.only({*QueryConfig.__dataclass_fields__, "tls_cert", "tls_key", "tls_ca"} - {"tls"})
    protocol = r.text("protocol", "qry").lower()
    if protocol not in ("qry", "qbp"):
        raise r.fail("protocol", "must be 'qry' (QRY^R02/ORF^R04) or 'qbp' (QBP/RSP)")
    query_name = r.text("query_name", DEFAULT_QUERY_NAME)
    if protocol == "qbp" and not query_name:
        raise r.fail("query_name", f"must name the query for QPD-1 (e.g. {DEFAULT_QUERY_NAME})")
    authorities = r.value("authorities", [])
    if isinstance(authorities, str):
        authorities = [a for a in authorities.split(",") if a.strip()]
    return QueryConfig(
        enabled=r.flag("enabled"),
        name=r.text("name", "lis-query"),
        host=r.text("host", "127.0.0.1"),
        port=r.port("port", 2576),
        tls=r.tls(),
        protocol=protocol,
        version=r.text("version", "") or ("2.4" if protocol == "qry" else "2.5.1"),
        query_name=query_name,
        application=r.text("application", "TRIALBRIDGE"),
        facility=r.text("facility", ""),
        lis_application=r.text("lis_application", ""),
        lis_facility=r.text("lis_facility", ""),
        authorities=tuple(str(a).strip().upper() for a in authorities),
        poll_seconds=r.number("poll_seconds", 300.0),
        timeout_seconds=r.number("timeout_seconds", 30.0, minimum=0.1),
        overlap_minutes=r.number("overlap_minutes", 5.0),
        max_pages=int(r.number("max_pages", 100, minimum=1)),
        forced_charset=r.text("forced_charset", "") or None,
        where_subject=r.text("where_subject", ""),
        reconcile_every_hours=r.number("reconcile_every_hours", 24.0),
        reconcile_at=r.time_of_day("reconcile_at", time(2, 0)),
        reconcile_lookback_days=r.number("reconcile_lookback_days", 0.0),
    )


def _known(section: Mapping[str, Any], allowed: set[str], name: str, where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {name}: {', '.join(unknown)} (known: {', '.join(sorted(allowed))})",
            path=where,
        )


class _Reader:
    """Typed reads of one sub-section, with errors naming ``sources.<sub>.<key>``."""

    def __init__(self, section: Any, name: str, where: str) -> None:
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{name} must be a mapping of keys", path=where)
        self.section: dict[str, Any] = dict(section or {})
        self.name = name
        self.where = where

    def only(self, allowed: set[str] | Mapping[str, Any]) -> None:
        _known(self.section, set(allowed), self.name, self.where)

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.name}.{key} {message}", path=self.where)

    def value(self, key: str, default: Any) -> Any:
        value = self.section.get(key)
        return default if value is None else value

    def text(self, key: str, default: str) -> str:
        return str(self.value(key, default)).strip()

    def flag(self, key: str) -> bool:
        value = self.value(key, False)
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
        raise self.fail(key, f"must be true or false, not {value!r}")

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self.value(key, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(key, f"must be a number, not {value!r}") from None
        if number < minimum:
            raise self.fail(key, f"must be at least {minimum:g}")
        return number

    def whole(self, key: str, default: int, minimum: int = 0) -> int:
        number = self.number(key, default, minimum)
        if number != int(number):
            raise self.fail(key, f"must be a whole number, not {number:g}")
        return int(number)

    def time_of_day(self, key: str, default: time) -> time:
        value = self.value(key, default)
        if isinstance(value, time):
            return value
        if isinstance(value, int) and 0 <= value < 24 * 60:  # YAML reads 02:00 as minutes
            return time(value // 60, value % 60)
        try:
            return time.fromisoformat(str(value).strip())
        except ValueError:
            raise self.fail(key, f"must be a time of day HH:MM, not {value!r}") from None

    def port(self, key: str, default: int) -> int:
        port = self.number(key, default)
        if port != int(port) or port > 65535:
            raise self.fail(key, "must be a port number (0 picks a free one)")
        return int(port)

    def path(self, key: str) -> Path | None:
        text = self.text(key, "")
        if not text:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else base_dir(self.where) / path

    def tls(self) -> Tls | None:
        cert, key, ca = self.path("tls_cert"), self.path("tls_key"), self.path("tls_ca")
        if cert is None and key is None and ca is None:
            return None
        if (cert is None) != (key is None):
            raise self.fail("tls_cert", "and tls_key must be given together")
        return Tls(cert, key, ca)
