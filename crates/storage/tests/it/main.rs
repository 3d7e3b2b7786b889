//! Integration tests of the partition log, one binary for the crate.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod crash;
mod edges;
mod fixture;
mod group_commit;
mod model;
mod power_loss;
mod power_loss_ext4;
mod retire;
mod scenarios;
mod smoke;
