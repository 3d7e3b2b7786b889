//! `Subscribe`: one task per subscription that long-polls the broker and feeds a bounded
//! channel the transport drains.
//!
//! Flow control: the task reads the next chunk only after the previous one was queued, and the
//! queue holds at most `ServerConfig::stream_buffer` responses, so a client that reads slowly
//! costs that much memory and slows only its own subscription; HTTP/2 flow control pushes back
//! from the socket into the queue. The task ends when the client goes away (the channel
//! closes, noticed even during a long-poll), when the server shuts down (the client gets
//! `UNAVAILABLE` naming the offset to resume from), or on the first error (sent as the
//! stream's status).
//!
//! The start position is resolved and the first read is made before the call returns, so a
//! bad topic, partition or offset fails the call itself rather than the stream.

use std::sync::Arc;
use std::time::Duration;

use rivulet_broker::{FetchRequest, FetchResponse, OffsetSpec};
use rivulet_proto::v1;
use rivulet_proto::v1::subscribe_request::Start;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{Instrument, Span, debug};

use super::log::position_spec;
use super::{Chunk, State, fetch_max_bytes};
use crate::convert;
use crate::error::ApiError;

/// How long one long-poll waits before the task looks again; only bounds how stale an idle
/// subscription's view of a deleted topic can get.
const POLL_WAIT: Duration = Duration::from_secs(30);

type Sender = mpsc::Sender<Result<v1::SubscribeResponse, Status>>;

/// One subscription's settings once its request is checked.
struct Subscription {
    state: Arc<State>,
    topic: String,
    partition: u32,
    raw: bool,
    max_bytes: u32,
}

/// Checks the request, resolves the start offset, makes the first read and spawns the task.
pub(crate) async fn start(
    state: Arc<State>,
    request: v1::SubscribeRequest,
) -> Result<mpsc::Receiver<Result<v1::SubscribeResponse, Status>>, ApiError> {
    let sub = Subscription {
        raw: convert::wants_raw(request.format)?,
        max_bytes: fetch_max_bytes(request.max_bytes, &state.config)?,
        topic: request.topic,
        partition: request.partition,
        state,
    };
    let offset = sub.start_offset(request.start).await?;
    let first = sub.read(offset, Duration::ZERO).await?;
    debug!(offset, "subscribed");

    let (tx, rx) = mpsc::channel(sub.state.config.stream_buffer);
    tokio::spawn(sub.run(offset, first, tx).instrument(Span::current()));
    Ok(rx)
}

impl Subscription {
    async fn start_offset(&self, start: Option<Start>) -> Result<u64, ApiError> {
        let broker = &self.state.broker;
        let spec = match start {
            Some(Start::Offset(offset)) => return Ok(offset),
            Some(Start::Group(group)) => {
                let committed = broker.committed_offset(&group, &self.topic, self.partition)?;
                match committed {
                    Some(committed) => return Ok(committed.offset),
                    None => OffsetSpec::Earliest,
                }
            }
            Some(Start::Position(position)) => position_spec(position)?,
            None => {
                return Err(ApiError::invalid(
                    "start",
                    "set one of offset, group or position",
                ));
            }
        };
        let offset = broker
            .list_offsets(&self.topic, self.partition, spec)
            .await?;
        // Earliest and Latest always give an offset.
        Ok(offset.unwrap_or_default())
    }

    async fn read(&self, offset: u64, wait: Duration) -> Result<FetchResponse, ApiError> {
        let request = FetchRequest::new(self.topic.as_str(), self.partition, offset)
            .with_max_bytes(self.max_bytes as usize)
            .with_wait(1, wait);
        Ok(self.state.broker.fetch(request).await?)
    }

    /// Sends `first`, then tails the partition until the client leaves or the server stops.
    async fn run(self, mut offset: u64, first: FetchResponse, tx: Sender) {
        let mut stop = self.state.stop.clone();
        let mut fetched = first;
        loop {
            match self.reply(offset, &fetched) {
                Ok(Some((reply, next))) => {
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|stopping| *stopping) => break,
                        sent = tx.send(Ok(reply)) => if sent.is_err() {
                            debug!(offset, "client went away");
                            return;
                        },
                    }
                    offset = next;
                }
                Ok(None) => {}
                Err(err) => {
                    let _ = tx.send(Err(err.into())).await;
                    return;
                }
            }

            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|stopping| *stopping) => break,
                next = self.read(offset, POLL_WAIT) => next,
                () = tx.closed() => {
                    debug!(offset, "client went away");
                    return;
                }
            };
            match next {
                Ok(next) => fetched = next,
                // The broker refuses reads once shutdown has begun; end with the resume hint.
                Err(_) if *stop.borrow() => break,
                Err(err) => {
                    let _ = tx.send(Err(err.into())).await;
                    return;
                }
            }
        }
        let resume = format!("resubscribe from offset {offset}");
        debug!(offset, "subscription ended by shutdown");
        let _ = tx.try_send(Err(ApiError::ShuttingDown { resume }.into()));
    }

    /// The response for a read, and the offset after it; `None` if the read found nothing.
    fn reply(
        &self,
        offset: u64,
        fetched: &FetchResponse,
    ) -> Result<Option<(v1::SubscribeResponse, u64)>, ApiError> {
        let chunk = Chunk::from_read(&self.topic, offset, fetched, self.raw, self.max_bytes)?;
        if chunk.records.is_empty() && chunk.batches.is_empty() {
            return Ok(None);
        }
        let next = chunk.next_offset;
        let reply = v1::SubscribeResponse {
            records: chunk.records,
            batches: chunk.batches,
            next_offset: next,
            high_watermark: fetched.log_end_offset,
            log_start_offset: fetched.log_start_offset,
        };
        Ok(Some((reply, next)))
    }
}
