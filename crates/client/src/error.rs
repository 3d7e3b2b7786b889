//! [`ClientError`], the one error type of the client, and its translation from gRPC statuses.
//!
//! The server maps every failure to one status code (see the server's error module), attaching
//! `RetryInfo` to retryable refusals and an `ErrorInfo` with the valid range to out-of-range
//! offsets. This module turns those back into variants a caller can branch on. It owns one
//! distinction the status code alone cannot make: a status the client library produced itself
//! because the connection failed carries a source error, while a status the server sent does
//! not, so the first becomes [`ClientError::Transport`] and the second keeps its code's variant.

use std::time::Duration;

use rivulet_format::FormatError;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Everything a client operation can fail with.
///
/// Variants that come from the server carry the RPC (`operation`) and the server's message,
/// which names the topic, partition and offsets involved. [`ClientError::is_retryable`] says
/// whether the same request may succeed later unchanged; the producer retries exactly those.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server address could not be parsed.
    #[error("invalid server address {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The first connection to the server failed.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The address connected to.
        address: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The topic or partition does not exist.
    #[error("{operation}: not found: {message}")]
    NotFound {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message.
        message: String,
    },
    /// An offset outside a partition's log. The range is filled in when the server reports it.
    #[error("{operation}: offset out of range: {message}")]
    OutOfRange {
        /// The RPC that failed.
        operation: &'static str,
        /// The offset asked for, if reported.
        requested: Option<u64>,
        /// The first offset still stored, if reported.
        log_start: Option<u64>,
        /// The log end offset, if reported.
        log_end: Option<u64>,
        /// The server's message.
        message: String,
    },
    /// The request breaks a rule of the API; retrying it unchanged fails again.
    #[error("{operation}: invalid argument: {message}")]
    InvalidArgument {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message.
        message: String,
    },
    /// The consumer group's membership refused the request: the partition moved to another
    /// member, or this member was removed (it missed heartbeats or held a revoked partition too
    /// long), or a commit without membership met a group with live members. A consumer treats
    /// it as losing the partitions concerned and rejoins; it is not fatal.
    #[error("{operation}: refused by group membership: {message}")]
    NotMember {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message.
        message: String,
    },
    /// The topic already exists.
    #[error("{operation}: already exists: {message}")]
    AlreadyExists {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message.
        message: String,
    },
    /// The server refused the request for now (too many bytes in flight, disk full); nothing
    /// was stored.
    #[error("{operation}: server busy: {message}")]
    Busy {
        /// The RPC that failed.
        operation: &'static str,
        /// The delay the server asked for, if any.
        retry_after: Option<Duration>,
        /// The server's message.
        message: String,
    },
    /// The request was larger than the server accepts (`max_request_bytes`); nothing of it was
    /// stored, and sending it again would fail the same way: send smaller batches.
    #[error("{operation}: request too large: {message}")]
    RequestTooLarge {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message, with the size and the limit.
        message: String,
    },
    /// The server cannot serve now, for instance because it is shutting down.
    #[error("{operation}: unavailable: {message}")]
    Unavailable {
        /// The RPC that failed.
        operation: &'static str,
        /// The delay the server asked for, if any.
        retry_after: Option<Duration>,
        /// The server's message.
        message: String,
    },
    /// The connection failed before or during the call. A produce that fails this way may or
    /// may not have been stored.
    #[error("{operation}: transport error: {message}")]
    Transport {
        /// The RPC that failed.
        operation: &'static str,
        /// What the transport reported.
        message: String,
    },
    /// The call did not finish within its deadline. A produce that fails this way may or may
    /// not have been stored.
    #[error("{operation}: timed out: {message}")]
    Timeout {
        /// The RPC that failed.
        operation: &'static str,
        /// What was reported.
        message: String,
    },
    /// The server reports damaged data.
    #[error("{operation}: data loss: {message}")]
    DataLoss {
        /// The RPC that failed.
        operation: &'static str,
        /// The server's message.
        message: String,
    },
    /// Any other status, such as an internal server error.
    #[error("{operation}: server error ({code:?}): {message}")]
    Server {
        /// The RPC that failed.
        operation: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// A fetched batch failed its CRC or could not be decoded.
    #[error(
        "corrupt batch from topic {topic:?} partition {partition} at offset {offset}: {source}"
    )]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset the fetch started at.
        offset: u64,
        /// What check failed.
        #[source]
        source: FormatError,
    },
    /// Records could not be encoded into a batch.
    #[error("cannot encode a batch for topic {topic:?} partition {partition}: {source}")]
    Encode {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What the encoder reported.
        #[source]
        source: FormatError,
    },
    /// A record is larger than the producer's whole buffer, so it can never be sent.
    #[error("record of {size} bytes for topic {topic:?} exceeds the producer buffer of {max}")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's approximate encoded size.
        size: usize,
        /// The buffer size.
        max: usize,
    },
    /// The producer's buffer is full and it was configured to fail instead of waiting.
    #[error("producer buffer full ({buffered} of {max} bytes used); record for {topic:?} refused")]
    BufferFull {
        /// The topic.
        topic: String,
        /// Bytes buffered when the record was refused.
        buffered: usize,
        /// The buffer size.
        max: usize,
    },
    /// A partition number the producer's metadata says does not exist.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
    /// The producer was closed, or its background task stopped.
    #[error("the producer is closed")]
    ProducerClosed,
    /// The consumer has no committed offset for a partition and its reset policy is
    /// [`OffsetReset::Fail`](crate::OffsetReset::Fail).
    #[error(
        "no committed offset for topic {topic:?} partition {partition} and reset policy is fail"
    )]
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The partition is not assigned to this consumer.
    #[error("topic {topic:?} partition {partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The operation needs a consumer group and the consumer was built without one.
    #[error("{operation} needs a consumer group; set one with ConsumerBuilder::group")]
    NoGroup {
        /// The operation.
        operation: &'static str,
    },
}

impl ClientError {
    /// Whether the same request may succeed later, unchanged: busy and unavailable servers,
    /// transport failures and timeouts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Busy { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Transport { .. }
                | ClientError::Timeout { .. }
        )
    }

    /// The delay the server asked for before a retry, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Busy { retry_after, .. }
            | ClientError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Translates the status an RPC named `operation` failed with.
    pub(crate) fn from_status(operation: &'static str, status: &Status) -> Self {
        let message = status.message().to_owned();

        // Statuses the server sent carry no source; ones tonic made from a failed connection
        // do, whatever code they picked.
        if std::error::Error::source(status).is_some()
            && matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
            )
        {
            return ClientError::Transport { operation, message };
        }

        let retry_after = || status.get_details_retry_info().and_then(|i| i.retry_delay);
        match status.code() {
            Code::NotFound => ClientError::NotFound { operation, message },
            Code::OutOfRange => out_of_range(operation, status, message),
            Code::InvalidArgument => ClientError::InvalidArgument { operation, message },
            Code::FailedPrecondition => ClientError::NotMember { operation, message },
            Code::AlreadyExists => ClientError::AlreadyExists { operation, message },
            Code::ResourceExhausted
                if status
                    .get_details_error_info()
                    .is_some_and(|info| info.reason == "REQUEST_TOO_LARGE") =>
            {
                ClientError::RequestTooLarge { operation, message }
            }
            Code::ResourceExhausted => ClientError::Busy {
                operation,
                retry_after: retry_after(),
                message,
            },
            Code::Unavailable => ClientError::Unavailable {
                operation,
                retry_after: retry_after(),
                message,
            },
            Code::DeadlineExceeded => ClientError::Timeout { operation, message },
            Code::DataLoss => ClientError::DataLoss { operation, message },
            code => ClientError::Server {
                operation,
                code,
                message,
            },
        }
    }
}

/// An out-of-range error with the range from the status's `ErrorInfo`. An `OUT_OF_RANGE`
/// without the server's `OFFSET_OUT_OF_RANGE` reason is not about an offset (gRPC itself uses
/// the code for a message over its size limit), so it is no reason to move a position.
fn out_of_range(operation: &'static str, status: &Status, message: String) -> ClientError {
    let info = status.get_details_error_info();
    if info
        .as_ref()
        .is_none_or(|info| info.reason != "OFFSET_OUT_OF_RANGE")
    {
        return ClientError::Server {
            operation,
            code: Code::OutOfRange,
            message,
        };
    }
    let field = |name: &str| {
        info.as_ref()
            .and_then(|i| i.metadata.get(name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    ClientError::OutOfRange {
        operation,
        requested: field("requested_offset"),
        log_start: field("log_start_offset"),
        log_end: field("log_end_offset"),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn out_of_range_without_the_offset_reason_is_not_an_offset_error() {
        let status = Status::new(
            Code::OutOfRange,
            "Error, encoded message length too large: found 1048626 bytes, the limit is: 1048576",
        );
        let err = ClientError::from_status("Fetch", &status);
        assert!(
            matches!(
                err,
                ClientError::Server {
                    code: Code::OutOfRange,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn out_of_range_carries_the_range_from_error_info() {
        let metadata = HashMap::from([
            ("requested_offset".to_owned(), "3".to_owned()),
            ("log_start_offset".to_owned(), "10".to_owned()),
            ("log_end_offset".to_owned(), "42".to_owned()),
        ]);
        let status = Status::with_error_details(
            Code::OutOfRange,
            "offset 3 is out of range",
            ErrorDetails::with_error_info("OFFSET_OUT_OF_RANGE", "rivulet.v1", metadata),
        );
        match ClientError::from_status("Fetch", &status) {
            ClientError::OutOfRange {
                requested,
                log_start,
                log_end,
                ..
            } => assert_eq!(
                (requested, log_start, log_end),
                (Some(3), Some(10), Some(42))
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn busy_is_retryable_and_keeps_its_hint() {
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "busy",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(250))),
        );
        let err = ClientError::from_status("Produce", &status);
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_request_over_the_servers_limit_is_not_retried_as_busy() {
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "request message of 20971525 bytes is larger than the server's limit",
            ErrorDetails::with_error_info(
                "REQUEST_TOO_LARGE",
                "rivulet.v1",
                std::collections::HashMap::new(),
            ),
        );
        let err = ClientError::from_status("Produce", &status);
        assert!(
            matches!(err, ClientError::RequestTooLarge { .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn refusals_that_would_fail_again_are_not_retryable() {
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::AlreadyExists,
            Code::DataLoss,
            Code::Internal,
        ] {
            let err = ClientError::from_status("Produce", &Status::new(code, "no"));
            assert!(!err.is_retryable(), "{code:?} must not be retried");
        }
    }

    #[test]
    fn a_status_made_from_a_local_error_is_a_transport_error() {
        let status = Status::from_error(Box::new(std::io::Error::other("connection refused")));
        let err = ClientError::from_status("Produce", &status);
        assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
        assert!(err.is_retryable());
    }
}
