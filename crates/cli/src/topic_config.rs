//! The per-topic settings `rivulet topic create --config key=value` accepts: one entry per
//! setting of the API's `TopicConfig`, each with its value parser, applied to a
//! [`NewTopic`].
//!
//! Keys are the API's field names; `.` and `-` may stand for `_` (`retention.ms`). A key not
//! listed here, or a value its parser refuses, is a usage error before anything is sent.

use rivulet_client::{DurabilityPolicy, NewTopic};

use crate::arg_values::{parse_bytes, parse_duration_ms};

/// One parsed `--config key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicSetting {
    RetentionMs(u64),
    RetentionBytes(u64),
    SegmentBytes(u64),
    MaxRecordBytes(u32),
    MaxBatchBytes(u32),
    DurabilityPolicy(DurabilityPolicy),
    SyncIntervalMs(u64),
}

/// Every key, its value syntax and meaning, for `--help` and error messages.
pub(crate) const SETTINGS_HELP: &str = "\
TOPIC SETTINGS (--config KEY=VALUE, repeatable; '.' or '-' may replace '_' in keys):
    retention_ms=DURATION      delete sealed segments older than this (e.g. 7d, 12h, 60000);
                               default: keep forever
    retention_bytes=SIZE       delete the oldest sealed segments while a partition holds
                               more (e.g. 10GiB); default: no limit
    segment_bytes=SIZE         start a new segment file at this size; default 1GiB
    max_record_bytes=SIZE      largest record accepted; default 1MiB
    max_batch_bytes=SIZE       largest record batch accepted (1024 to 2147483647); default
                               max_record_bytes + 64KiB, at least 1MiB + 64KiB
    durability_policy=POLICY   when data produced with written durability is synced:
                               always-durable, sync-interval (default) or os-decides
    sync_interval_ms=DURATION  the interval of sync-interval; default 1000
SIZE is bytes, optionally with a unit (KiB, MiB, GiB, KB, MB, GB); DURATION is milliseconds,
optionally with a unit (ms, s, m, h, d).";

/// Parses one `key=value`; a clap value parser.
pub(crate) fn parse_setting(text: &str) -> Result<TopicSetting, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got {text:?}"));
    };
    let key = key.trim().to_ascii_lowercase().replace(['.', '-'], "_");
    let value = value.trim();
    let small = |v: u64| {
        u32::try_from(v).map_err(|_| format!("{key}: {value} is too large (at most 4294967295)"))
    };
    let with_key = |err: String| format!("{key}: {err}");
    Ok(match key.as_str() {
        "retention_ms" => TopicSetting::RetentionMs(parse_duration_ms(value).map_err(with_key)?),
        "retention_bytes" => TopicSetting::RetentionBytes(parse_bytes(value).map_err(with_key)?),
        "segment_bytes" => TopicSetting::SegmentBytes(parse_bytes(value).map_err(with_key)?),
        "max_record_bytes" => {
            TopicSetting::MaxRecordBytes(small(parse_bytes(value).map_err(with_key)?)?)
        }
        "max_batch_bytes" => {
            TopicSetting::MaxBatchBytes(small(parse_bytes(value).map_err(with_key)?)?)
        }
        "durability_policy" => TopicSetting::DurabilityPolicy(parse_policy(value)?),
        "sync_interval_ms" => {
            TopicSetting::SyncIntervalMs(parse_duration_ms(value).map_err(with_key)?)
        }
        _ => {
            return Err(format!(
                "unknown topic setting {key:?}; known: retention_ms, retention_bytes, \
                 segment_bytes, max_record_bytes, max_batch_bytes, durability_policy, \
                 sync_interval_ms"
            ));
        }
    })
}

fn parse_policy(value: &str) -> Result<DurabilityPolicy, String> {
    match value.to_ascii_lowercase().replace('_', "-").as_str() {
        "always-durable" => Ok(DurabilityPolicy::AlwaysDurable),
        "sync-interval" => Ok(DurabilityPolicy::SyncInterval),
        "os-decides" => Ok(DurabilityPolicy::OsDecides),
        _ => Err(format!(
            "durability_policy: unknown policy {value:?}; expected always-durable, \
             sync-interval or os-decides"
        )),
    }
}

/// The name `topic describe` shows for a policy.
pub(crate) fn policy_name(policy: Option<DurabilityPolicy>) -> &'static str {
    match policy {
        Some(DurabilityPolicy::AlwaysDurable) => "always-durable",
        Some(DurabilityPolicy::SyncInterval) => "sync-interval",
        Some(DurabilityPolicy::OsDecides) => "os-decides",
        _ => "unknown",
    }
}

impl TopicSetting {
    /// The setting's key, as the API names it.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            TopicSetting::RetentionMs(_) => "retention_ms",
            TopicSetting::RetentionBytes(_) => "retention_bytes",
            TopicSetting::SegmentBytes(_) => "segment_bytes",
            TopicSetting::MaxRecordBytes(_) => "max_record_bytes",
            TopicSetting::MaxBatchBytes(_) => "max_batch_bytes",
            TopicSetting::DurabilityPolicy(_) => "durability_policy",
            TopicSetting::SyncIntervalMs(_) => "sync_interval_ms",
        }
    }
}

/// Refuses a setting given twice (`retention.ms=7d` and `retention_ms=1s` are one key), rather
/// than letting the last one silently win.
pub(crate) fn check_no_repeats(settings: &[TopicSetting]) -> Result<(), String> {
    for (i, setting) in settings.iter().enumerate() {
        if settings[..i].iter().any(|s| s.key() == setting.key()) {
            return Err(format!(
                "topic setting {} is given more than once; give each setting once",
                setting.key()
            ));
        }
    }
    Ok(())
}

/// `topic` with `setting` applied.
pub(crate) fn apply(topic: NewTopic, setting: &TopicSetting) -> NewTopic {
    match *setting {
        TopicSetting::RetentionMs(ms) => topic.retention_ms(ms),
        TopicSetting::RetentionBytes(bytes) => topic.retention_bytes(bytes),
        TopicSetting::SegmentBytes(bytes) => topic.segment_bytes(bytes),
        TopicSetting::MaxRecordBytes(bytes) => topic.max_record_bytes(bytes),
        TopicSetting::MaxBatchBytes(bytes) => topic.max_batch_bytes(bytes),
        TopicSetting::DurabilityPolicy(policy) => topic.durability_policy(policy),
        TopicSetting::SyncIntervalMs(ms) => topic.sync_interval_ms(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_dots_and_dashes_and_values_take_units() {
        assert_eq!(
            parse_setting("retention.ms=7d"),
            Ok(TopicSetting::RetentionMs(7 * 86_400_000))
        );
        assert_eq!(
            parse_setting("segment-bytes=64MiB"),
            Ok(TopicSetting::SegmentBytes(64 << 20))
        );
        assert_eq!(
            parse_setting("durability_policy=os-decides"),
            Ok(TopicSetting::DurabilityPolicy(DurabilityPolicy::OsDecides))
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_problem() {
        let err = parse_setting("retention_hours=3").unwrap_err();
        assert!(
            err.contains("unknown topic setting \"retention_hours\""),
            "{err}"
        );
        let err = parse_setting("max_record_bytes=8GiB").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = parse_setting("segment_bytes").unwrap_err();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }
}
