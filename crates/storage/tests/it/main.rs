//! Integration tests of the partition log, one binary for the crate.

mod smoke;
