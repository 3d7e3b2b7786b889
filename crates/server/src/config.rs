//! [`ServerConfig`]: the limits the network layer enforces before a request reaches the
//! broker. The broker's own limits (record and batch sizes per topic, bytes in flight) are
//! set on the broker; these bound what the transport accepts and buffers.

use std::time::Duration;

/// Smallest `max_request_bytes` and `max_response_bytes`: room for a small batch and the
/// message around it.
pub const MIN_MESSAGE_LIMIT: usize = 1 << 10;
/// Largest `max_request_bytes` and `max_response_bytes`: a gRPC message's length prefix is a
/// 32-bit number.
pub const MAX_MESSAGE_LIMIT: usize = u32::MAX as usize;
/// What `max_response_bytes` keeps beyond `max_request_bytes`, and beyond the record bytes a
/// fetch may return: room for the reply's framing around the records (offsets, timestamps,
/// field tags), so a batch accepted in one request always fits one reply.
pub const RESPONSE_HEADROOM: usize = 64 << 10;

/// A [`ServerConfig`] setting outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} = {value} is out of range: it {rule}")]
pub struct InvalidServerConfig {
    /// The setting.
    pub setting: &'static str,
    /// The value given.
    pub value: usize,
    /// What is allowed.
    pub rule: String,
}

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

    /// Checks each message limit against its range (1 KiB to 4 GiB - 1), and that a response
    /// may be [`RESPONSE_HEADROOM`] larger than a request, so that a batch the server accepted
    /// can be fetched back.
    ///
    /// # Errors
    ///
    /// [`InvalidServerConfig`] naming the first setting that breaks a rule, and the rule.
    pub fn validate(&self) -> Result<(), InvalidServerConfig> {
        for (setting, value) in [
            ("max_request_bytes", self.max_request_bytes),
            ("max_response_bytes", self.max_response_bytes),
        ] {
            if !(MIN_MESSAGE_LIMIT..=MAX_MESSAGE_LIMIT).contains(&value) {
                return Err(InvalidServerConfig {
                    setting,
                    value,
                    rule: format!(
                        "must be {MIN_MESSAGE_LIMIT} to {MAX_MESSAGE_LIMIT} bytes (1 KiB to the \
                         largest gRPC message)"
                    ),
                });
            }
        }
        if self.max_response_bytes < self.max_request_bytes.saturating_add(RESPONSE_HEADROOM) {
            return Err(InvalidServerConfig {
                setting: "max_response_bytes",
                value: self.max_response_bytes,
                rule: format!(
                    "must be at least max_request_bytes ({}) + 65536, or a batch accepted in \
                     one request could not be fetched back",
                    self.max_request_bytes
                ),
            });
        }
        Ok(())
    }

    /// Most record bytes one fetch or subscription reply carries: `max_response_bytes` less
    /// [`RESPONSE_HEADROOM`]. A fetch asking for more gets this much.
    pub fn fetch_bytes_limit(&self) -> usize {
        self.max_response_bytes.saturating_sub(RESPONSE_HEADROOM)
    }

    /// Sets [`ServerConfig::stream_buffer`] (at least 1).
    pub fn with_stream_buffer(mut self, responses: usize) -> Self {
        self.stream_buffer = responses.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        ServerConfig::default().validate().unwrap();
    }

    #[test]
    fn message_limits_outside_their_range_are_refused_naming_the_rule() {
        for (config, setting, value) in [
            (
                ServerConfig::default().with_max_request_bytes(0),
                "max_request_bytes",
                "0",
            ),
            (
                ServerConfig::default().with_max_response_bytes(10),
                "max_response_bytes",
                "10",
            ),
            (
                ServerConfig::default()
                    .with_max_request_bytes(1 << 20)
                    .with_max_response_bytes(1 << 40),
                "max_response_bytes",
                "1099511627776",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("{setting} = {value} ")), "{err}");
            assert!(err.contains("1024 to 4294967295 bytes"), "{err}");
        }
    }

    #[test]
    fn a_response_limit_below_the_request_limit_is_refused() {
        let err = ServerConfig::default()
            .with_max_request_bytes(512 << 20)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_response_bytes = 268435456"), "{err}");
        assert!(
            err.contains("at least max_request_bytes (536870912) + 65536"),
            "{err}"
        );
        let tight = ServerConfig::default()
            .with_max_request_bytes(1 << 20)
            .with_max_response_bytes((1 << 20) + (64 << 10) - 1);
        assert!(tight.validate().is_err());
        let fits = tight.with_max_response_bytes((1 << 20) + (64 << 10));
        fits.validate().unwrap();
        assert_eq!(fits.fetch_bytes_limit(), 1 << 20);
    }
}
