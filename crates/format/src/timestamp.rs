//! The timestamp rule: which record timestamps a batch may carry.
//!
//! A record timestamp is milliseconds since the Unix epoch, from 0 to `i64::MAX`, or
//! [`NO_TIMESTAMP`] (-1). That is what Kafka accepts: its Java producer refuses negative
//! timestamps, and its broker checks every create time against its configured window except
//! -1, which it keeps as "no timestamp". Any other negative value is refused.
//!
//! A v2 batch stores each record's timestamp as `baseTimestamp + timestampDelta`, the delta a
//! 64-bit varlong. Readers that do not wrap (kafka-python is one) get the right timestamp only
//! if that sum does not overflow, so a batch whose sum overflows is refused, not wrapped. Within
//! the range above, the only record that cannot follow another in a batch is one at `i64::MAX`
//! after a first record at -1.
//!
//! This module only states the rule; the builder and [`check_timestamps`](crate::check_timestamps)
//! apply it.

/// The timestamp Kafka uses for "no timestamp"; stored and served as it is.
pub const NO_TIMESTAMP: i64 = -1;

/// The allowed timestamps, worded for error messages.
pub const TIMESTAMP_RULE: &str =
    "-1 (no timestamp) or 0 to 9223372036854775807 milliseconds since the Unix epoch";

/// Whether `timestamp` is one a record may carry: [`NO_TIMESTAMP`], or 0 to `i64::MAX`.
pub fn is_valid_timestamp(timestamp: i64) -> bool {
    timestamp >= NO_TIMESTAMP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_and_every_non_negative_timestamp_are_allowed() {
        for ok in [-1, 0, 1, 1_700_000_000_000, i64::MAX] {
            assert!(is_valid_timestamp(ok), "{ok}");
        }
        for bad in [-2, -1_000, i64::MIN] {
            assert!(!is_valid_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn the_rule_text_names_both_ends() {
        assert!(TIMESTAMP_RULE.contains(&NO_TIMESTAMP.to_string()));
        assert!(TIMESTAMP_RULE.contains(&i64::MAX.to_string()));
    }
}
