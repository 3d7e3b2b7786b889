//! `rivulet.v1.Log`: produce (unary and streamed), fetch, subscribe, offset lookups and group
//! offsets.
//!
//! A produce stream is served by one task per call that reads a request, produces it, and
//! queues the ack in a bounded channel before reading the next: requests are appended in the
//! order sent, and a client that stops reading acks stops its own stream, not others.

use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use rivulet_broker::{Broker, Committer, FetchRequest, OffsetSpec, ProduceRequest};
use rivulet_proto::v1;
use rivulet_proto::v1::log_server::Log;
use rivulet_proto::v1::produce_request::Payload;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, debug_span, instrument};

use super::{Chunk, State, fetch_max_bytes, fetch_max_wait, respond, subscribe};
use crate::convert;
use crate::error::ApiError;

/// The `rivulet.v1.Log` service.
pub(crate) struct LogService {
    state: Arc<State>,
}

impl LogService {
    pub(crate) fn new(state: Arc<State>) -> Self {
        LogService { state }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Log for LogService {
    #[instrument(name = "produce", skip_all, fields(
        topic = %request.get_ref().topic,
        partition = ?request.get_ref().partition,
    ))]
    async fn produce(
        &self,
        request: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        respond(produce(&self.state.broker, request.into_inner()).await)
    }

    type ProduceStreamStream = ResponseStream<v1::ProduceStreamResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<v1::ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let (tx, rx) = mpsc::channel(self.state.config.stream_buffer);
        let task = produce_stream(Arc::clone(&self.state), request.into_inner(), tx);
        tokio::spawn(task.instrument(debug_span!("produce_stream")));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[instrument(name = "fetch", skip_all, fields(
        topic = %request.get_ref().topic,
        partition = request.get_ref().partition,
        offset = request.get_ref().offset,
    ))]
    async fn fetch(
        &self,
        request: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        respond(fetch(&self.state, request.into_inner()).await)
    }

    type SubscribeStream = ResponseStream<v1::SubscribeResponse>;

    #[instrument(name = "subscribe", skip_all, fields(
        topic = %request.get_ref().topic,
        partition = request.get_ref().partition,
    ))]
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let stream = subscribe::start(Arc::clone(&self.state), request.into_inner()).await;
        respond(stream.map(|rx| Box::pin(ReceiverStream::new(rx)) as Self::SubscribeStream))
    }

    #[instrument(name = "list_offsets", skip_all, fields(
        topic = %request.get_ref().topic,
        partition = request.get_ref().partition,
    ))]
    async fn list_offsets(
        &self,
        request: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        respond(list_offsets(&self.state.broker, request.into_inner()).await)
    }

    #[instrument(name = "commit_offsets", skip_all, fields(
        group = %request.get_ref().group,
        count = request.get_ref().offsets.len(),
    ))]
    async fn commit_offsets(
        &self,
        request: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let request = request.into_inner();
        let result = async {
            if request.offsets.is_empty() {
                return Err(ApiError::invalid("offsets", "commit at least one offset"));
            }
            let commits = request.offsets.into_iter().map(convert::offset_commit);
            let committer = match request.member_id {
                Some(member_id) => Committer::member(member_id, request.generation),
                None => Committer::default(),
            };
            self.state
                .broker
                .commit_offsets_as(&request.group, &committer, commits.collect())
                .await?;
            Ok(v1::CommitOffsetsResponse {})
        };
        respond(result.await)
    }

    #[instrument(name = "heartbeat", skip_all, fields(group = %request.get_ref().group))]
    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let result = (|| {
            let strategy = convert::assignment_strategy(request.strategy)?;
            let group = request.group.clone();
            let assignment =
                self.state
                    .broker
                    .heartbeat(&group, strategy, convert::heartbeat(request))?;
            let interval = self.state.broker.group_timeouts().session / 3;
            Ok(v1::HeartbeatResponse {
                member_id: assignment.member_id,
                generation: assignment.generation,
                partitions: assignment
                    .partitions
                    .into_iter()
                    .map(convert::topic_partition_out)
                    .collect(),
                pending: u32::try_from(assignment.pending).unwrap_or(u32::MAX),
                heartbeat_interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            })
        })();
        respond(result)
    }

    #[instrument(name = "leave_group", skip_all, fields(group = %request.get_ref().group))]
    async fn leave_group(
        &self,
        request: Request<v1::LeaveGroupRequest>,
    ) -> Result<Response<v1::LeaveGroupResponse>, Status> {
        let request = request.into_inner();
        let result = self
            .state
            .broker
            .leave_group(&request.group, &request.member_id)
            .map(|()| v1::LeaveGroupResponse {})
            .map_err(ApiError::from);
        respond(result)
    }

    #[instrument(name = "fetch_offsets", skip_all, fields(group = %request.get_ref().group))]
    async fn fetch_offsets(
        &self,
        request: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let request = request.into_inner();
        let result = self
            .state
            .broker
            .committed_offsets(&request.group, request.topic.as_deref())
            .map(|offsets| v1::FetchOffsetsResponse {
                offsets: offsets.into_iter().map(convert::committed_offset).collect(),
            });
        respond(result.map_err(ApiError::from))
    }
}

/// One produce request, unary or from a stream.
async fn produce(
    broker: &Broker,
    request: v1::ProduceRequest,
) -> Result<v1::ProduceResponse, ApiError> {
    let durability = convert::durability(request.durability)?;
    let Some(payload) = request.payload else {
        return Err(ApiError::invalid(
            "payload",
            "set either records or batches",
        ));
    };

    match payload {
        Payload::Records(records) => {
            let records = records.records.into_iter().map(convert::produce_record);
            let mut produce = ProduceRequest::records(request.topic, records.collect())
                .with_durability(durability);
            if let Some(partition) = request.partition {
                produce = produce.to_partition(partition);
            }
            let reply = broker.produce(produce).await?;
            Ok(v1::ProduceResponse {
                batches: reply.appended.iter().map(convert::batch_ack).collect(),
            })
        }
        Payload::Batches(raw) => {
            let Some(partition) = request.partition else {
                return Err(ApiError::invalid(
                    "partition",
                    "raw batches need an explicit partition",
                ));
            };
            if raw.batches.is_empty() {
                return Err(ApiError::invalid("batches", "send at least one batch"));
            }
            // All validated before any is stored, then appended in order.
            let batches = raw.batches.into_iter().map(BytesMut::from).collect();
            let produce = ProduceRequest::batches(request.topic, partition, batches)
                .with_durability(durability);
            let reply = broker.produce(produce).await?;
            Ok(v1::ProduceResponse {
                batches: reply.appended.iter().map(convert::batch_ack).collect(),
            })
        }
    }
}

/// Serves one produce stream until the client finishes, goes away, or the server stops.
async fn produce_stream(
    state: Arc<State>,
    mut inbound: Streaming<v1::ProduceStreamRequest>,
    acks: mpsc::Sender<Result<v1::ProduceStreamResponse, Status>>,
) {
    let mut stop = state.stop.clone();
    loop {
        let next = tokio::select! {
            next = inbound.message() => next,
            _ = stop.wait_for(|stopping| *stopping) => {
                let err = ApiError::ShuttingDown { resume: "send the rest again".to_owned() };
                let _ = acks.try_send(Err(err.into()));
                return;
            }
        };
        let message = match next {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(status) => {
                // A message the codec refused (too large, undecodable) ends the stream.
                debug!(code = ?status.code(), message = status.message(), "produce stream ended");
                let _ = acks.send(Err(status)).await;
                return;
            }
        };
        let result = match message.request {
            Some(request) => produce(&state.broker, request).await,
            None => Err(ApiError::invalid(
                "request",
                "each stream message needs a request",
            )),
        };
        let result = match result {
            Ok(reply) => v1::produce_stream_response::Result::Ok(reply),
            Err(err) => {
                let status = Status::from(err);
                debug!(code = ?status.code(), message = status.message(), "produce failed");
                v1::produce_stream_response::Result::Error(v1::StreamError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                })
            }
        };
        let ack = v1::ProduceStreamResponse {
            correlation_id: message.correlation_id,
            result: Some(result),
        };
        if acks.send(Ok(ack)).await.is_err() {
            debug!("client went away");
            return;
        }
    }
}

async fn fetch(state: &State, request: v1::FetchRequest) -> Result<v1::FetchResponse, ApiError> {
    let broker = &state.broker;
    let raw = convert::wants_raw(request.format)?;
    let max_bytes = fetch_max_bytes(request.max_bytes, &state.config)?;
    let max_wait = fetch_max_wait(request.max_wait_ms)?;

    let fetch = FetchRequest::new(request.topic.as_str(), request.partition, request.offset)
        .with_max_bytes(max_bytes as usize)
        .with_wait(request.min_bytes as usize, max_wait);
    let fetched = broker.fetch(fetch).await?;

    let chunk = Chunk::from_read(&request.topic, request.offset, &fetched, raw, max_bytes)?;
    debug!(
        records = chunk.records.len(),
        batches = chunk.batches.len(),
        next_offset = chunk.next_offset,
        "fetched"
    );
    Ok(v1::FetchResponse {
        partition: fetched.partition,
        records: chunk.records,
        batches: chunk.batches,
        log_start_offset: fetched.log_start_offset,
        high_watermark: fetched.log_end_offset,
        durable_offset: fetched.durable_offset,
        next_offset: chunk.next_offset,
    })
}

async fn list_offsets(
    broker: &Broker,
    request: v1::ListOffsetsRequest,
) -> Result<v1::ListOffsetsResponse, ApiError> {
    use v1::list_offsets_request::Spec;

    let spec = match request.spec {
        Some(Spec::Position(position)) => position_spec(position)?,
        Some(Spec::TimestampMs(timestamp)) => OffsetSpec::Timestamp(timestamp),
        None => {
            return Err(ApiError::invalid(
                "spec",
                "set either position or timestamp_ms",
            ));
        }
    };
    let offset = broker
        .list_offsets(&request.topic, request.partition, spec)
        .await?;
    Ok(v1::ListOffsetsResponse { offset })
}

/// The broker's lookup for a `StartPosition`.
pub(crate) fn position_spec(position: i32) -> Result<OffsetSpec, ApiError> {
    match v1::StartPosition::try_from(position) {
        Ok(v1::StartPosition::Earliest) => Ok(OffsetSpec::Earliest),
        Ok(v1::StartPosition::Latest) => Ok(OffsetSpec::Latest),
        _ => Err(ApiError::invalid(
            "position",
            format!("{position} is not START_POSITION_EARLIEST or START_POSITION_LATEST"),
        )),
    }
}
