//! [`RequestLimit`]: refuses request messages over [`ServerConfig::max_request_bytes`] with
//! `RESOURCE_EXHAUSTED`, as gRPC's status-code table asks, before any of their bytes is
//! buffered.
//!
//! tonic's codec has a limit of its own, but answers `OUT_OF_RANGE`. This wrapper watches the
//! request body as it streams past the service: it reads each message's 5-byte gRPC prefix (a
//! compressed flag and a big-endian `u32` length) and, when a length passes the limit, ends the
//! body with a `RESOURCE_EXHAUSTED` status in place of that prefix. tonic hands a body error
//! that is a `Status` on unchanged: as the reply of a unary call, or as the next item of a
//! request stream, whose handler ends the stream with it. Nothing is buffered here; the wrapper
//! only counts bytes, so the codec never starts on an oversized message. The codec keeps its
//! own limit at the same value as a backstop.
//!
//! [`ServerConfig::max_request_bytes`]: crate::ServerConfig::max_request_bytes

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::ERROR_DOMAIN;

/// Bytes of the prefix before every gRPC message: compressed flag, then the length.
const PREFIX_LEN: usize = 5;

/// A gRPC service whose request messages may be at most `limit` bytes each.
#[derive(Debug, Clone)]
pub(crate) struct RequestLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> RequestLimit<S> {
    /// Wraps `inner`, refusing request messages longer than `limit` bytes.
    pub(crate) fn new(inner: S, limit: usize) -> Self {
        RequestLimit { inner, limit }
    }
}

impl<S: NamedService> NamedService for RequestLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for RequestLimit<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner
            .call(request.map(|body| Body::new(LimitedBody::new(body, limit))))
    }
}

/// A request body that fails instead of passing on the prefix of an oversized message.
struct LimitedBody {
    inner: Body,
    limit: usize,
    scan: MessageScan,
    /// The refusal to return on the next poll, after the bytes before the oversized
    /// message's prefix have been passed on.
    refusal: Option<Status>,
    /// Set once the refusal is returned; the body then ends.
    refused: bool,
}

impl LimitedBody {
    fn new(inner: Body, limit: usize) -> Self {
        LimitedBody {
            inner,
            limit,
            scan: MessageScan::new(),
            refusal: None,
            refused: false,
        }
    }

    fn refuse(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.refused = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Ready(None);
        }
        if let Some(status) = this.refusal.take() {
            return this.refuse(status);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let Some(data) = frame.data_ref() else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let Err(oversized) = this.scan.feed(data, this.limit) else {
            return Poll::Ready(Some(Ok(frame)));
        };
        let status = too_large(oversized.len, this.limit);
        if oversized.prefix_at == 0 {
            return this.refuse(status);
        }
        // Pass on the whole messages before it; the refusal follows on the next poll.
        let mut before = data.clone();
        before.truncate(oversized.prefix_at);
        this.refusal = Some(status);
        Poll::Ready(Some(Ok(Frame::data(before))))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || (self.refusal.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // A refusal cuts the body short, so the inner body's exact size may not hold.
        SizeHint::default()
    }
}

/// The status for a message of `len` bytes over `limit`. Unlike a busy server's
/// `RESOURCE_EXHAUSTED` it carries no `RetryInfo`, since the same request would fail again,
/// and an `ErrorInfo` (`REQUEST_TOO_LARGE`) so clients can tell it apart.
fn too_large(len: u64, limit: usize) -> Status {
    let message = format!(
        "request message of {len} bytes is larger than the server's limit of {limit} bytes \
         (max_request_bytes); it was refused before being read, so nothing of it was stored. \
         Send smaller requests"
    );
    let metadata = HashMap::from([
        ("size".to_owned(), len.to_string()),
        ("limit".to_owned(), limit.to_string()),
    ]);
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_error_info("REQUEST_TOO_LARGE", ERROR_DOMAIN, metadata),
    )
}

/// Where the byte stream stands in its sequence of length-prefixed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageScan {
    /// Reading a prefix; `have` of its bytes seen so far.
    Prefix {
        bytes: [u8; PREFIX_LEN],
        have: usize,
    },
    /// Inside a message; `remaining` bytes of it still to come.
    Message { remaining: u64 },
}

/// A message prefix announcing more bytes than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Oversized {
    /// Where its prefix starts in the chunk fed (0 when it started in an earlier chunk).
    prefix_at: usize,
    /// The length it announces.
    len: u64,
}

impl MessageScan {
    fn new() -> Self {
        MessageScan::Prefix {
            bytes: [0; PREFIX_LEN],
            have: 0,
        }
    }

    /// Follows `chunk`, the next bytes of the body.
    fn feed(&mut self, chunk: &[u8], limit: usize) -> Result<(), Oversized> {
        let mut pos = 0;
        while pos < chunk.len() {
            match self {
                MessageScan::Prefix { bytes, have } => {
                    let prefix_at = pos.saturating_sub(*have);
                    let n = (PREFIX_LEN - *have).min(chunk.len() - pos);
                    bytes[*have..*have + n].copy_from_slice(&chunk[pos..pos + n]);
                    *have += n;
                    pos += n;
                    if *have < PREFIX_LEN {
                        continue;
                    }
                    let len =
                        u64::from(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
                    if len > limit as u64 {
                        return Err(Oversized { prefix_at, len });
                    }
                    *self = if len == 0 {
                        MessageScan::new()
                    } else {
                        MessageScan::Message { remaining: len }
                    };
                }
                MessageScan::Message { remaining } => {
                    let n = (*remaining).min((chunk.len() - pos) as u64);
                    *remaining -= n;
                    pos += n as usize;
                    if *remaining == 0 {
                        *self = MessageScan::new();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(7, len));
        out
    }

    #[test]
    fn messages_within_the_limit_pass_however_they_are_split() {
        let stream: Vec<u8> = [message(10), message(0), message(100)].concat();
        for split in 1..stream.len() {
            let mut scan = MessageScan::new();
            for chunk in stream.chunks(split) {
                assert_eq!(scan.feed(chunk, 100), Ok(()), "chunks of {split}");
            }
            assert_eq!(scan, MessageScan::new(), "chunks of {split}");
        }
    }

    #[test]
    fn an_oversized_prefix_is_caught_where_it_starts() {
        let good = message(10);
        let stream: Vec<u8> = [good.clone(), message(101)].concat();
        let mut scan = MessageScan::new();
        assert_eq!(
            scan.feed(&stream, 100),
            Err(Oversized {
                prefix_at: good.len(),
                len: 101
            })
        );

        // A prefix split across chunks is caught in the chunk that completes it, at 0.
        let mut scan = MessageScan::new();
        assert_eq!(scan.feed(&stream[..good.len() + 2], 100), Ok(()));
        assert_eq!(
            scan.feed(&stream[good.len() + 2..], 100),
            Err(Oversized {
                prefix_at: 0,
                len: 101
            })
        );
    }

    #[test]
    fn the_refusal_names_the_size_and_the_limit() {
        let status = too_large(17_825_817, 16 << 20);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        for words in [
            "17825817 bytes",
            "limit of 16777216 bytes",
            "max_request_bytes",
        ] {
            assert!(status.message().contains(words), "{status:?}");
        }
    }
}
