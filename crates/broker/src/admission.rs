//! Admission of requests: the bound on produce bytes in flight, and the drain at shutdown.
//!
//! Every request takes a [`Ticket`] before doing any work and gives it back when dropped.
//! Produce tickets carry the request's byte size; while the bytes in flight plus the new
//! request would pass the limit, the request is refused with [`BrokerError::Busy`] instead of
//! queued, so memory held by the broker stays bounded whatever the clients do. A single request
//! is always admitted when nothing else is in flight, so a request larger than the limit (but
//! within the topic's batch limit) cannot starve.
//!
//! Once closing starts, new tickets are refused with [`BrokerError::ShuttingDown`] and
//! [`Admission::drained`] resolves when the last ticket is dropped. The lock here is held only
//! for a few arithmetic operations, never across an await.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::{BrokerError, Result};

/// Requests and bytes in flight.
#[derive(Debug, Default)]
struct InFlight {
    requests: usize,
    bytes: u64,
    closing: bool,
}

/// The admission gate of one broker.
pub(crate) struct Admission {
    state: Mutex<InFlight>,
    idle: Notify,
    limit: u64,
    retry_after: Duration,
}

/// Proof of admission; dropping it releases the request's share.
pub(crate) struct Ticket<'a> {
    gate: &'a Admission,
    bytes: u64,
}

impl Admission {
    pub(crate) fn new(limit: u64, retry_after: Duration) -> Self {
        Admission {
            state: Mutex::new(InFlight::default()),
            idle: Notify::new(),
            limit,
            retry_after,
        }
    }

    /// Admits a request that will hold `bytes` of produce data (0 for other requests).
    pub(crate) fn admit(&self, bytes: u64) -> Result<Ticket<'_>> {
        let mut state = self.state.lock();
        if state.closing {
            return Err(BrokerError::ShuttingDown);
        }
        if bytes > 0 && state.bytes > 0 && state.bytes.saturating_add(bytes) > self.limit {
            return Err(BrokerError::Busy {
                retry_after_ms: self.retry_after.as_millis().max(1) as u64,
                in_flight_bytes: state.bytes,
                limit: self.limit,
            });
        }
        state.requests += 1;
        state.bytes += bytes;
        Ok(Ticket { gate: self, bytes })
    }

    /// Produce bytes in flight now.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// Refuses new requests from now on.
    pub(crate) fn close(&self) {
        self.state.lock().closing = true;
        self.idle.notify_waiters();
    }

    /// Resolves once closing has started and no ticket is left.
    pub(crate) async fn drained(&self) {
        loop {
            let mut notified = std::pin::pin!(self.idle.notified());
            // Register before checking, so a release between the check and the await is seen.
            notified.as_mut().enable();
            {
                let state = self.state.lock();
                if state.closing && state.requests == 0 {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.requests -= 1;
        state.bytes -= self.bytes;
        if state.requests == 0 {
            self.gate.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_past_the_byte_limit_are_refused_not_queued() {
        let gate = Admission::new(100, Duration::from_millis(7));
        let first = gate.admit(60).unwrap();
        let second = gate.admit(40).unwrap();
        match gate.admit(1) {
            Err(BrokerError::Busy {
                retry_after_ms,
                in_flight_bytes,
                limit,
            }) => assert_eq!((retry_after_ms, in_flight_bytes, limit), (7, 100, 100)),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("admitted past the limit"),
        }
        drop(first);
        assert!(gate.admit(50).is_ok());
        drop(second);
    }

    #[test]
    fn a_lone_oversized_request_is_admitted() {
        let gate = Admission::new(10, Duration::from_millis(1));
        let big = gate.admit(1000).unwrap();
        assert!(gate.admit(1).is_err());
        drop(big);
        assert_eq!(gate.in_flight_bytes(), 0);
    }

    #[test]
    fn closing_refuses_new_requests() {
        let gate = Admission::new(10, Duration::from_millis(1));
        gate.close();
        assert!(matches!(gate.admit(0), Err(BrokerError::ShuttingDown)));
    }

    #[tokio::test]
    async fn drain_waits_for_the_last_ticket() {
        let gate = std::sync::Arc::new(Admission::new(10, Duration::from_millis(1)));
        let ticket_gate = std::sync::Arc::clone(&gate);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn(async move {
            let _ticket = ticket_gate.admit(0).unwrap();
            let _ = rx.await;
        });
        tokio::task::yield_now().await;
        gate.close();
        let drained = tokio::spawn({
            let gate = std::sync::Arc::clone(&gate);
            async move { gate.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!drained.is_finished());
        tx.send(()).unwrap();
        holder.await.unwrap();
        drained.await.unwrap();
    }
}
