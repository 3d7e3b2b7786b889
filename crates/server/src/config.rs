//! [`ServerConfig`]: the limits the network layer enforces before a request reaches the
//! broker. The broker's own limits (record and batch sizes per topic, bytes in flight) are
//! set on the broker; these bound what the transport accepts and buffers.

use std::time::Duration;

/// Limits of the gRPC layer. Build with [`ServerConfig::default`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request message accepted, in bytes; a larger one is refused with
    /// `RESOURCE_EXHAUSTED`, naming its size and this limit, as soon as its length prefix
    /// arrives: it is never buffered and no handler sees it. In a request stream the messages
    /// before it are handled and the stream then ends with that status. Default 16 MiB.
    pub max_request_bytes: usize,
    /// Largest response message sent, in bytes. A fetch whose reply would be larger fails (with
    /// tonic's `OUT_OF_RANGE`, "encoded message length too large"); ask for a smaller
    /// `max_bytes`. Default 256 MiB.
    pub max_response_bytes: usize,
    /// Responses a subscription or produce stream may have queued for a client that is not
    /// reading; once full, the server stops reading the log (or the client's requests) for
    /// that stream only. Default 8.
    pub stream_buffer: usize,
    /// How long, after the shutdown future completes and the broker has stopped, connections
    /// may take to close before the server drops them. Default 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: 16 << 20,
            max_response_bytes: 256 << 20,
            stream_buffer: 8,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::max_request_bytes`].
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::max_response_bytes`].
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Sets [`ServerConfig::drain_timeout`].
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::stream_buffer`] (at least 1).
    pub fn with_stream_buffer(mut self, responses: usize) -> Self {
        self.stream_buffer = responses.max(1);
        self
    }
}
