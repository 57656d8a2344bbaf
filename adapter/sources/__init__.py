"""Stage "sources": how messages reach the inbox door (:class:`adapter.intake.Intake`).

- :class:`FileDropSource` polls a directory for complete files (``filedrop``);
- :class:`MllpSource` listens for MLLP connections and ACKs after the commit (``mllp``, with
  the pure layers ``framing`` and ``ack`` underneath);
- :class:`QuerySource` asks a LIS for each enrolled subject's new results (``query_source``,
  with the pure protocol in ``query``); ``lis_simulator`` is a LIS that answers it.

Each is configured in the ``sources:`` section of ``config/trialbridge.yaml``
(:func:`load_sources_config`) and reports through :class:`Events`.
"""

from adapter.sources.background import Background
from adapter.sources.config import SourcesConfig, load_sources_config, sources_config
from adapter.sources.events import Events, Recorder
from adapter.sources.filedrop import FileDropSource
from adapter.sources.mllp import MllpSource
from adapter.sources.query_source import QuerySource

__all__ = [
    "Background",
    "Events",
    "FileDropSource",
    "MllpSource",
    "QuerySource",
    "Recorder",
    "SourcesConfig",
    "load_sources_config",
    "sources_config",
]
