//! The gRPC handlers. `log` serves `rivulet.v1.Log` (produce, fetch, offsets), `subscribe`
//! owns the task behind each `Subscribe` stream, and `admin` serves `rivulet.v1.Admin`.
//!
//! Every handler checks what the broker cannot (enum values, required fields, limits of this
//! layer), calls one broker method, and converts the result; storage and offset logic stay in
//! the broker. Each handler runs in a span named after its RPC with the topic, partition and
//! offsets as fields, and logs its outcome at debug level.

mod admin;
mod log;
mod subscribe;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rivulet_broker::{Broker, FetchResponse};
use rivulet_format::visit_records;
use rivulet_proto::v1;
use tokio::sync::watch;
use tonic::{Response, Status};
use tracing::debug;

pub(crate) use admin::AdminService;
pub(crate) use log::LogService;

use crate::config::ServerConfig;
use crate::convert;
use crate::error::ApiError;

/// `max_bytes` of a fetch or subscription that leaves it at 0.
const DEFAULT_FETCH_BYTES: u32 = 1 << 20;
/// Largest `max_bytes` a fetch or subscription may ask for.
const MAX_FETCH_BYTES: u32 = 64 << 20;
/// Longest `max_wait_ms` a fetch may ask for.
const MAX_FETCH_WAIT_MS: u32 = 60_000;

/// What every handler shares.
pub(crate) struct State {
    pub(crate) broker: Arc<Broker>,
    pub(crate) config: ServerConfig,
    /// Turns `true` once the server is shutting down; streams end when it does.
    pub(crate) stop: watch::Receiver<bool>,
}

impl State {
    pub(crate) fn new(
        broker: Arc<Broker>,
        config: ServerConfig,
        stop: watch::Receiver<bool>,
    ) -> Self {
        State {
            broker,
            config,
            stop,
        }
    }
}

/// Data read from a partition, in the shape the client asked for.
pub(crate) struct Chunk {
    pub(crate) records: Vec<v1::Record>,
    pub(crate) batches: Vec<Bytes>,
    /// Where the next read starts.
    pub(crate) next_offset: u64,
}

impl Chunk {
    /// Turns a broker read into records starting exactly at `offset`, or into the stored
    /// batches.
    ///
    /// Records: the broker returns whole batches, the first of which may start before
    /// `offset`; records below it are dropped here. Records are then kept while their encoded
    /// size in the reply fits in `max_bytes`, and the first always, however large, so a
    /// consumer always progresses. Batches are decoded one at a time and decoding stops at the
    /// budget, so a compressed batch that expands a thousandfold costs one batch of memory, not
    /// the whole read.
    pub(crate) fn from_read(
        topic: &str,
        offset: u64,
        fetched: &FetchResponse,
        raw: bool,
        max_bytes: u32,
    ) -> Result<Chunk, ApiError> {
        if raw {
            return Ok(Chunk {
                records: Vec::new(),
                batches: fetched.read.batches().collect(),
                next_offset: fetched.read.next_offset().max(offset),
            });
        }

        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut full = false;
        for batch in fetched.read.batches() {
            visit_records(&batch, |record| {
                if u64::try_from(record.offset).is_ok_and(|o| o < offset) {
                    return ControlFlow::Continue(());
                }
                let record = convert::record(record);
                // As the reply's repeated field holds it: tag, length, message.
                let len = record.encoded_len();
                let size = 1 + prost::length_delimiter_len(len) + len;
                if !records.is_empty() && bytes + size > max_bytes as usize {
                    full = true;
                    return ControlFlow::Break(());
                }
                bytes += size;
                records.push(record);
                ControlFlow::Continue(())
            })
            .map_err(|err| ApiError::Damaged {
                topic: topic.to_owned(),
                partition: fetched.partition,
                detail: format!(
                    "a stored batch at or after offset {offset} does not decode: {err}"
                ),
            })?;
            if full {
                break;
            }
        }
        // Batches holding only records below `offset` cannot come back from a valid log, but
        // if they did, skipping past them keeps a consumer from asking for them forever.
        let next_offset = match records.last() {
            Some(last) => last.offset + 1,
            None => fetched.read.next_offset().max(offset),
        };
        Ok(Chunk {
            records,
            batches: Vec::new(),
            next_offset,
        })
    }
}

/// A request's `max_bytes`, defaulted and bounded, then lowered so the reply fits the server's
/// `max_response_bytes` with its framing ([`ServerConfig::fetch_bytes_limit`]).
pub(crate) fn fetch_max_bytes(requested: u32, config: &ServerConfig) -> Result<u32, ApiError> {
    let bytes = match requested {
        0 => DEFAULT_FETCH_BYTES,
        bytes if bytes > MAX_FETCH_BYTES => {
            return Err(ApiError::invalid(
                "max_bytes",
                format!("{bytes} is more than the limit of {MAX_FETCH_BYTES} (64 MiB)"),
            ));
        }
        bytes => bytes,
    };
    let limit = u32::try_from(config.fetch_bytes_limit()).unwrap_or(u32::MAX);
    Ok(bytes.min(limit))
}

/// A fetch's `max_wait_ms`, bounded.
pub(crate) fn fetch_max_wait(requested: u32) -> Result<Duration, ApiError> {
    if requested > MAX_FETCH_WAIT_MS {
        return Err(ApiError::invalid(
            "max_wait_ms",
            format!("{requested} is more than the limit of {MAX_FETCH_WAIT_MS}"),
        ));
    }
    Ok(Duration::from_millis(u64::from(requested)))
}

/// Converts a handler's result into its reply, logging the outcome at debug level inside the
/// handler's span.
pub(crate) fn respond<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    match result {
        Ok(reply) => {
            debug!("ok");
            Ok(Response::new(reply))
        }
        Err(err) => {
            let status = Status::from(err);
            debug!(code = ?status.code(), message = status.message(), "failed");
            Err(status)
        }
    }
}
