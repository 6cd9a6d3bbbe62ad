"""Live streams inside the server, split by job: `registry` (streams, hello checks, receive,
recovery, the per-stream lock between processes), `analysis` (analysis ticks batched across
streams, failures), `publish` (subscribers, replay buffer, brokers), `store` (periodic storing),
`hub` (`LiveHub`, the facade the routes use). See `hub` for the life of a stream."""

from strideflow.service.live.hub import LiveHub
from strideflow.service.live.publish import (
    REPLAY_MAX_MESSAGES,
    Broker,
    InMemoryBroker,
    PostgresBroker,
    Subscriber,
    broker_for,
    stride_messages,
)
from strideflow.service.live.registry import (
    AnalyzerFactory,
    LiveStream,
    Send,
    StreamConflict,
    StreamEnded,
    StreamHeld,
    StreamKey,
    StreamRefused,
    default_analyzer,
    has_live_logs,
)

WAL_DIRNAME = "stream-wal"  # under ServiceSettings.data_dir

__all__ = [
    "REPLAY_MAX_MESSAGES",
    "WAL_DIRNAME",
    "AnalyzerFactory",
    "Broker",
    "InMemoryBroker",
    "LiveHub",
    "LiveStream",
    "PostgresBroker",
    "Send",
    "StreamConflict",
    "StreamEnded",
    "StreamHeld",
    "StreamKey",
    "StreamRefused",
    "Subscriber",
    "broker_for",
    "default_analyzer",
    "has_live_logs",
    "stride_messages",
]
