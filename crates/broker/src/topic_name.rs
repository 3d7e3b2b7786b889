//! The topic naming rule and the collision rule.
//!
//! A topic name becomes a directory name, so the rule is counted in bytes and allows only
//! characters every supported file system stores unchanged:
//!
//! - 1 to [`MAX_TOPIC_NAME_LEN`] (249) bytes, each one of `A-Z a-z 0-9 . _ -`;
//! - not `.` or `..`;
//! - names starting with `__` are reserved for the broker's internal topics.
//!
//! Two names collide when they are equal after ASCII lower-casing and mapping `.` to `_`
//! (Kafka's rule, which also keeps names apart on case-insensitive file systems). This module
//! owns only these checks; it touches no files.

use crate::error::{BrokerError, Result};

/// Longest topic name, in bytes. A partition directory is named by the partition number under
/// the topic's directory, so every path component stays within the common 255-byte limit.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Prefix of names reserved for internal topics.
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

/// Checks `name` against the naming rule, including the reserved prefix.
pub(crate) fn validate_user_topic_name(name: &str) -> Result<()> {
    validate_topic_name(name)?;
    if name.starts_with(INTERNAL_TOPIC_PREFIX) {
        return Err(invalid(
            name,
            "names starting with \"__\" are reserved for internal topics",
        ));
    }
    Ok(())
}

/// Checks `name` against the naming rule, reserved prefix aside.
pub(crate) fn validate_topic_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid(
            name,
            "a topic name must be 1 to 249 bytes long, of the characters A-Z a-z 0-9 . _ -",
        ));
    }
    if name == "." || name == ".." {
        return Err(invalid(name, "a topic name cannot be \".\" or \"..\""));
    }
    if !name.bytes().all(is_allowed_byte) {
        return Err(invalid(
            name,
            "a topic name may contain only the characters A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(())
}

/// The form two names are compared in: equal keys collide.
pub(crate) fn collision_key(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'.' => '_',
            other => char::from(other.to_ascii_lowercase()),
        })
        .collect()
}

fn is_allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn invalid(name: &str, rule: &'static str) -> BrokerError {
    // Keep error messages bounded even for absurdly long names.
    let shown: String = name.chars().take(MAX_TOPIC_NAME_LEN + 8).collect();
    BrokerError::InvalidTopicName { name: shown, rule }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_bytes() {
        assert!(validate_user_topic_name("a").is_ok());
        assert!(validate_user_topic_name(&"a".repeat(249)).is_ok());
        for len in [250, 255, 256] {
            assert!(validate_user_topic_name(&"a".repeat(len)).is_err(), "{len}");
        }
        // 150 two-byte characters: 300 bytes, and not in the allowed set anyway.
        assert!(validate_user_topic_name(&"ä".repeat(150)).is_err());
    }

    #[test]
    fn path_like_and_odd_names_are_refused() {
        for name in ["", ".", "..", "a/b", "a\\b", "a\0b", "a b", "ä"] {
            assert!(validate_user_topic_name(name).is_err(), "{name:?}");
        }
        assert!(validate_user_topic_name("...").is_ok());
        assert!(validate_user_topic_name("a.b-c_D9").is_ok());
    }

    #[test]
    fn double_underscore_is_reserved_for_internal_topics() {
        let err = validate_user_topic_name("__offsets").unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(validate_topic_name("__offsets").is_ok());
        assert!(validate_user_topic_name("_one").is_ok());
    }

    #[test]
    fn names_collide_ignoring_case_and_dot_versus_underscore() {
        assert_eq!(collision_key("Foo"), collision_key("foo"));
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
        assert_eq!(collision_key("A.B"), collision_key("a_b"));
        assert_ne!(collision_key("a-b"), collision_key("a_b"));
    }
}
