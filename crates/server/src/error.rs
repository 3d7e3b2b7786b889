//! [`ApiError`], every failure a handler can return, and its one conversion into a gRPC
//! [`Status`].
//!
//! Broker errors carry no file paths (the broker strips them and logs them where they occur),
//! so their messages go to clients as they are. The mapping from error to status code lives
//! here and nowhere else; handlers only use `?`.
//!
//! | error | code | details |
//! |---|---|---|
//! | unknown topic or partition | `NOT_FOUND` | |
//! | offset out of range | `OUT_OF_RANGE` | `ErrorInfo` with `log_start_offset`, `log_end_offset` |
//! | broken naming, size or count rule | `INVALID_ARGUMENT` | `BadRequest` for request fields |
//! | topic exists | `ALREADY_EXISTS` | |
//! | too many bytes in flight, disk full | `RESOURCE_EXHAUSTED` | `RetryInfo` |
//! | request message over `max_request_bytes` | `RESOURCE_EXHAUSTED` | `ErrorInfo` `REQUEST_TOO_LARGE` with `size`, `limit` (from `request_limit`) |
//! | shutting down | `UNAVAILABLE` | `RetryInfo` |
//! | damaged data | `DATA_LOSS` | |
//! | damaged topic | `DATA_LOSS` | `ErrorInfo` `TOPIC_DAMAGED` with `topic` |
//! | committed offsets in doubt | `DATA_LOSS` | `ErrorInfo` `COMMITS_IN_DOUBT` with `group` |
//! | group membership refuses a heartbeat or commit | `FAILED_PRECONDITION` | |
//! | anything else | `INTERNAL` | |

use std::collections::HashMap;
use std::time::Duration;

use rivulet_broker::{BrokerError, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::warn;

/// `ErrorInfo.domain` of every error with structured details.
pub(crate) const ERROR_DOMAIN: &str = "rivulet.v1";

/// Retry delay suggested when the disk is full: long enough for retention or an operator to
/// free space, short enough that a producer does not give up.
const DISK_FULL_RETRY: Duration = Duration::from_secs(1);

/// Retry delay suggested while the server shuts down, for clients that reconnect to a
/// restarted server.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(1);

/// A failed request, before it becomes a [`Status`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The broker refused or failed the request.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A request field breaks a rule the server checks before calling the broker.
    #[error("invalid {field}: {rule}")]
    InvalidField {
        /// The field, as named in the .proto file.
        field: &'static str,
        /// The rule it breaks, with the value when useful.
        rule: String,
    },
    /// Stored batches the broker returned could not be decoded.
    #[error("data damaged in topic {topic:?} partition {partition}: {detail}")]
    Damaged {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What failed to decode.
        detail: String,
    },
    /// The server is shutting down and ends the call.
    #[error("server is shutting down; {resume}")]
    ShuttingDown {
        /// How to carry on, e.g. the offset to resubscribe from.
        resume: String,
    },
}

impl ApiError {
    /// A request field that breaks `rule`.
    pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field,
            rule: rule.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = err.to_string();
        match err {
            ApiError::Broker(err) => broker_status(err, message),
            ApiError::InvalidField { field, rule } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, rule),
            ),
            ApiError::Damaged { .. } => Status::new(Code::DataLoss, message),
            ApiError::ShuttingDown { .. } => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(SHUTDOWN_RETRY)),
            ),
        }
    }
}

fn broker_status(err: BrokerError, message: String) -> Status {
    match err {
        BrokerError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
            ..
        } => {
            let metadata = HashMap::from([
                ("requested_offset".to_owned(), requested.to_string()),
                ("log_start_offset".to_owned(), log_start.to_string()),
                ("log_end_offset".to_owned(), log_end.to_string()),
            ]);
            Status::with_error_details(
                Code::OutOfRange,
                message,
                ErrorDetails::with_error_info("OFFSET_OUT_OF_RANGE", ERROR_DOMAIN, metadata),
            )
        }
        BrokerError::Busy { retry_after_ms, .. } => Status::with_error_details(
            Code::ResourceExhausted,
            message,
            ErrorDetails::with_retry_info(Some(Duration::from_millis(retry_after_ms))),
        ),
        BrokerError::DiskFull { .. } => Status::with_error_details(
            Code::ResourceExhausted,
            message,
            ErrorDetails::with_retry_info(Some(DISK_FULL_RETRY)),
        ),
        BrokerError::TopicDamaged { topic, .. } => Status::with_error_details(
            Code::DataLoss,
            message,
            ErrorDetails::with_error_info(
                "TOPIC_DAMAGED",
                ERROR_DOMAIN,
                HashMap::from([("topic".to_owned(), topic)]),
            ),
        ),
        BrokerError::CommitsInDoubt { group, .. } => Status::with_error_details(
            Code::DataLoss,
            message,
            ErrorDetails::with_error_info(
                "COMMITS_IN_DOUBT",
                ERROR_DOMAIN,
                HashMap::from([("group".to_owned(), group)]),
            ),
        ),
        err => {
            let code = match err.kind() {
                ErrorKind::NotFound => Code::NotFound,
                ErrorKind::OutOfRange => Code::OutOfRange,
                ErrorKind::InvalidArgument => Code::InvalidArgument,
                ErrorKind::AlreadyExists => Code::AlreadyExists,
                ErrorKind::Unavailable => Code::Unavailable,
                ErrorKind::DataLoss => Code::DataLoss,
                ErrorKind::FailedPrecondition => Code::FailedPrecondition,
                _ => Code::Internal,
            };
            if code == Code::Internal {
                warn!(error = %err, "internal error returned to client");
            }
            if code == Code::Unavailable {
                return Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_retry_info(Some(SHUTDOWN_RETRY)),
                );
            }
            Status::new(code, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(err: impl Into<ApiError>) -> Status {
        Status::from(err.into())
    }

    #[test]
    fn every_broker_error_kind_maps_to_its_code() {
        let cases = [
            (
                BrokerError::UnknownTopic { topic: "t".into() },
                Code::NotFound,
                "unknown topic \"t\"",
            ),
            (
                BrokerError::UnknownPartition {
                    topic: "t".into(),
                    partition: 9,
                    partitions: 3,
                },
                Code::NotFound,
                "partitions 0 to 2",
            ),
            (
                BrokerError::InvalidTopicName {
                    name: "a/b".into(),
                    rule: "only letters",
                },
                Code::InvalidArgument,
                "only letters",
            ),
            (
                BrokerError::TopicExists {
                    topic: "a_b".into(),
                    existing: "a.b".into(),
                },
                Code::AlreadyExists,
                "collides with existing topic \"a.b\"",
            ),
            (
                BrokerError::ShuttingDown,
                Code::Unavailable,
                "shutting down",
            ),
            (
                BrokerError::Corrupt {
                    scope: "topic \"t\" partition 0".into(),
                    detail: "offsets 5 to 9 are unreadable".into(),
                },
                Code::DataLoss,
                "offsets 5 to 9",
            ),
            (
                BrokerError::Internal {
                    scope: "topic \"t\" partition 0".into(),
                    detail: "write segment failed: boom".into(),
                },
                Code::Internal,
                "write segment failed",
            ),
        ];
        for (err, code, text) in cases {
            let status = status(err);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(text), "{status:?}");
        }
    }

    #[test]
    fn out_of_range_carries_the_valid_range_in_message_and_details() {
        let status = status(BrokerError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            requested: 99,
            log_start: 10,
            log_end: 20,
        });
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(
            status.message().contains("valid offsets are 10 to 20"),
            "{status:?}"
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "OFFSET_OUT_OF_RANGE");
        assert_eq!(info.metadata["log_start_offset"], "10");
        assert_eq!(info.metadata["log_end_offset"], "20");
    }

    #[test]
    fn busy_and_disk_full_say_when_to_retry() {
        let busy = status(BrokerError::Busy {
            retry_after_ms: 20,
            in_flight_bytes: 100,
            limit: 50,
        });
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert_eq!(
            busy.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(20))
        );
        let full = status(BrokerError::DiskFull {
            operation: "write segment",
            scope: "topic \"t\" partition 0".into(),
        });
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(full.message().contains("retry later"), "{full:?}");
        assert!(full.get_details_retry_info().is_some());
    }

    #[test]
    fn damaged_topics_and_commits_in_doubt_are_data_loss_with_a_reason() {
        let topic = status(BrokerError::TopicDamaged {
            topic: "t".into(),
            detail: "its metadata file (topic.meta) is damaged: CRC mismatch".into(),
        });
        assert_eq!(topic.code(), Code::DataLoss);
        assert!(topic.message().contains("delete the topic"), "{topic:?}");
        let info = topic.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["topic"].as_str()),
            ("TOPIC_DAMAGED", "t")
        );

        let group = status(BrokerError::CommitsInDoubt {
            group: "g".into(),
            detail: "the group offsets log cannot read its offsets 1 to 1".into(),
        });
        assert_eq!(group.code(), Code::DataLoss);
        assert!(group.message().contains("offsets 1 to 1"), "{group:?}");
        let info = group.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["group"].as_str()),
            ("COMMITS_IN_DOUBT", "g")
        );
    }

    #[test]
    fn invalid_fields_name_the_field_and_rule() {
        let status = status(ApiError::invalid("max_bytes", "too big"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid max_bytes: too big");
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "max_bytes");
    }

    #[test]
    fn messages_never_name_files() {
        // The broker keeps paths out of its errors; this guards the messages built here too.
        let errors: Vec<ApiError> = vec![
            BrokerError::DiskFull {
                operation: "write segment",
                scope: "topic \"t\" partition 0".into(),
            }
            .into(),
            ApiError::Damaged {
                topic: "t".into(),
                partition: 0,
                detail: "bad crc".into(),
            },
            ApiError::ShuttingDown {
                resume: "resubscribe from offset 3".into(),
            },
        ];
        for err in errors {
            let status = Status::from(err);
            assert!(!status.message().contains('/'), "{status:?}");
        }
    }
}
