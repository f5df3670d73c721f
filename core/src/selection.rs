//! What a scan reads: which topics and partitions, where each partition starts (the start
//! policy) and where the replay ends (the cutoff). Checked before any request is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{format_timestamp_ms, Error, Result};
use crate::pattern::TopicPattern;
use crate::resolve::PartitionRange;

/// In `start_offsets`: the log start (the earliest offset still stored), as Spark's Kafka
/// source and librdkafka's `OFFSET_BEGINNING` write it.
pub const EARLIEST_OFFSET: i64 = -2;
/// In `start_offsets` and `stop_offsets`: the end of the log at resolution time (the last
/// stable offset), as librdkafka's `OFFSET_END`.
pub const END_OFFSET: i64 = -1;

/// Where a partition's read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPolicy {
    /// The log start: everything still stored.
    Earliest,
    /// The end of the log at resolution time: nothing historical.
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
    /// As [`StartPolicy::Timestamp`] with the timestamp `now - lookback`.
    Relative(Duration),
}

impl StartPolicy {
    /// The policy names users write, in the order error messages list them.
    pub const NAMES: [&'static str; 4] = ["earliest", "latest", "timestamp", "relative"];

    /// Build a policy from the SQL-style parameters: a policy name and the `start` timestamp
    /// (ms) and `lookback` it may need. Without a name, `start` implies `timestamp`,
    /// `lookback` implies `relative`, and nothing implies `earliest`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `policy`, `start` or `lookback` for an unknown
    /// policy, a missing or superfluous `start`/`lookback`.
    pub fn from_parameters(
        policy: Option<&str>,
        start_ms: Option<i64>,
        lookback: Option<Duration>,
    ) -> Result<Self> {
        let name = match policy {
            Some(name) => name.trim().to_ascii_lowercase(),
            None => match (start_ms, lookback) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "start",
                        "give either start (policy 'timestamp') or lookback (policy 'relative'), not both"
                            .into(),
                    ))
                }
                (Some(_), None) => "timestamp".into(),
                (None, Some(_)) => "relative".into(),
                (None, None) => "earliest".into(),
            },
        };
        let superfluous = |parameter: &str| {
            invalid(
                parameter,
                format!("policy '{name}' takes no {parameter}; leave it out"),
            )
        };
        match name.as_str() {
            "earliest" | "latest" => {
                if start_ms.is_some() {
                    return Err(superfluous("start"));
                }
                if lookback.is_some() {
                    return Err(superfluous("lookback"));
                }
                Ok(if name == "earliest" {
                    StartPolicy::Earliest
                } else {
                    StartPolicy::Latest
                })
            }
            "timestamp" => {
                if lookback.is_some() {
                    return Err(superfluous("lookback"));
                }
                let start = start_ms.ok_or_else(|| {
                    invalid("start", "policy 'timestamp' needs a start timestamp".into())
                })?;
                check_not_before_epoch("start", start)?;
                Ok(StartPolicy::Timestamp(start))
            }
            "relative" => {
                if start_ms.is_some() {
                    return Err(superfluous("start"));
                }
                let lookback = lookback.ok_or_else(|| {
                    invalid(
                        "lookback",
                        "policy 'relative' needs a lookback interval".into(),
                    )
                })?;
                Ok(StartPolicy::Relative(lookback))
            }
            _ => Err(invalid(
                "policy",
                format!(
                    "expected one of {}, found '{}'",
                    Self::NAMES.map(|n| format!("'{n}'")).join(", "),
                    policy.unwrap_or_default()
                ),
            )),
        }
    }

    /// The start timestamp this policy asks for at time `now_ms`, if it is time-based.
    pub fn start_timestamp(&self, now_ms: i64) -> Option<i64> {
        match *self {
            StartPolicy::Timestamp(ms) => Some(ms),
            StartPolicy::Relative(lookback) => {
                let lookback_ms = i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
                Some(now_ms.saturating_sub(lookback_ms).max(0))
            }
            StartPolicy::Earliest | StartPolicy::Latest => None,
        }
    }
}

/// One topic of a scan and where its partitions start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSelection {
    /// The topic's name.
    pub topic: String,
    /// Where its partitions start, unless `start_offsets` names them.
    pub start: StartPolicy,
    /// Explicit start offsets (inclusive) of some partitions: an offset, [`EARLIEST_OFFSET`]
    /// or [`END_OFFSET`]. Partitions not named follow `start`.
    pub start_offsets: BTreeMap<i32, i64>,
    /// Explicit stop offsets (exclusive) of some partitions: an offset or [`END_OFFSET`].
    /// Partitions not named stop at the end of the log or the cutoff.
    pub stop_offsets: BTreeMap<i32, i64>,
}

impl TopicSelection {
    /// A topic whose partitions all start by `start`.
    pub fn new(topic: impl Into<String>, start: StartPolicy) -> Self {
        Self {
            topic: topic.into(),
            start,
            start_offsets: BTreeMap::new(),
            stop_offsets: BTreeMap::new(),
        }
    }

    /// Give some partitions explicit start offsets (`parameter` names them in errors).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `parameter` for a negative partition, a partition
    /// named twice, or an offset below [`EARLIEST_OFFSET`].
    pub fn with_start_offsets(
        mut self,
        parameter: &str,
        offsets: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<Self> {
        self.start_offsets = offset_map(parameter, &self.topic, offsets, EARLIEST_OFFSET)?;
        Ok(self)
    }

    /// Give some partitions explicit stop offsets (`parameter` names them in errors).
    ///
    /// # Errors
    /// As [`TopicSelection::with_start_offsets`]; [`EARLIEST_OFFSET`] is no stop.
    pub fn with_stop_offsets(
        mut self,
        parameter: &str,
        offsets: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<Self> {
        self.stop_offsets = offset_map(parameter, &self.topic, offsets, END_OFFSET)?;
        Ok(self)
    }
}

/// Check one topic's explicit offsets: partitions from 0, each once, offsets from `lowest`.
fn offset_map(
    parameter: &str,
    topic: &str,
    offsets: impl IntoIterator<Item = (i32, i64)>,
    lowest: i64,
) -> Result<BTreeMap<i32, i64>> {
    let mut map = BTreeMap::new();
    for (partition, offset) in offsets {
        if partition < 0 {
            return Err(invalid(
                parameter,
                format!("partition numbers start at 0, found {partition} (topic '{topic}')"),
            ));
        }
        if offset < lowest {
            let expected = if lowest == EARLIEST_OFFSET {
                "an offset >= 0, -2 (the log start) or -1 (the end of the log)"
            } else {
                "an offset >= 0 or -1 (the end of the log)"
            };
            return Err(invalid(
                parameter,
                format!(
                    "expected {expected}, found {offset} for partition {partition} of topic \
                     '{topic}'"
                ),
            ));
        }
        if map.insert(partition, offset).is_some() {
            return Err(invalid(
                parameter,
                format!("partition {partition} of topic '{topic}' is named twice"),
            ));
        }
    }
    Ok(map)
}

/// What a start offset below the log start (deleted by retention) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnMissing {
    /// An error naming the topic, partition, asked offset and log start (the default).
    #[default]
    Fail,
    /// Start at the log start instead; `kafka_offsets` says so.
    Skip,
}

impl OnMissing {
    /// Parse the `on_missing` parameter: `'fail'` or `'skip'`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `on_missing` for any other value.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            _ => Err(invalid(
                "on_missing",
                format!("expected 'fail' or 'skip', found '{text}'"),
            )),
        }
    }
}

/// Everything that decides which offsets a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSelection {
    /// The topics, each with its start policy. Names are unique.
    pub topics: Vec<TopicSelection>,
    /// Read only these partitions of every topic (`None`: all). Sorted, unique.
    pub partitions: Option<Vec<i32>>,
    /// Stop at the first offset whose timestamp is at or after this (ms since the epoch).
    pub cutoff_ms: Option<i64>,
    /// An explicit plan: exactly these ranges are read (the rows of `kafka_offsets`), and the
    /// start policies, `partitions`, the cutoff and explicit offsets are not used.
    pub ranges: Option<Vec<PartitionRange>>,
    /// What a start below the log start does.
    pub on_missing: OnMissing,
    /// The patterns the topics were chosen by. Follow mode reads topics that start matching
    /// later; a bounded scan reads the topics matched at resolution.
    pub topic_patterns: Vec<TopicPattern>,
}

impl ScanSelection {
    /// Check and build a selection.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no topics, a topic listed twice, a negative or repeated
    /// partition, an empty partition list, or a cutoff before a `timestamp` start.
    pub fn new(
        topics: Vec<TopicSelection>,
        partitions: Option<Vec<i32>>,
        cutoff_ms: Option<i64>,
    ) -> Result<Self> {
        if topics.is_empty() {
            return Err(invalid("topics", "expected at least one topic".into()));
        }
        if let Some(cutoff) = cutoff_ms {
            check_not_before_epoch("cutoff", cutoff)?;
        }
        for (index, selection) in topics.iter().enumerate() {
            crate::validate_topic_name("topics", &selection.topic)?;
            if topics[..index].iter().any(|t| t.topic == selection.topic) {
                return Err(invalid(
                    "topics",
                    format!("topic '{}' is listed twice", selection.topic),
                ));
            }
            if let (StartPolicy::Timestamp(start), Some(cutoff)) = (selection.start, cutoff_ms) {
                if cutoff < start {
                    return Err(invalid(
                        "cutoff",
                        format!(
                            "the cutoff ({}) is before the start ({}) of topic '{}'",
                            format_timestamp_ms(cutoff),
                            format_timestamp_ms(start),
                            selection.topic
                        ),
                    ));
                }
            }
        }
        let partitions = match partitions {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid(
                        "partitions",
                        "expected at least one partition; leave it out to read all".into(),
                    ));
                }
                let mut sorted = list.clone();
                sorted.sort_unstable();
                if let Some(&negative) = sorted.iter().find(|&&p| p < 0) {
                    return Err(invalid(
                        "partitions",
                        format!("partition numbers start at 0, found {negative}"),
                    ));
                }
                if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
                    return Err(invalid(
                        "partitions",
                        format!("partition {} is listed twice", pair[0]),
                    ));
                }
                Some(sorted)
            }
        };
        for selection in &topics {
            if let Some(wanted) = &partitions {
                for (parameter, offsets) in [
                    ("start_offsets", &selection.start_offsets),
                    ("stop_offsets", &selection.stop_offsets),
                ] {
                    if let Some(partition) = offsets.keys().find(|p| !wanted.contains(p)) {
                        return Err(invalid(
                            parameter,
                            format!(
                                "partition {partition} of topic '{}' is not among the \
                                 partitions read ({})",
                                selection.topic,
                                wanted
                                    .iter()
                                    .map(i32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
            }
            for (partition, &stop) in &selection.stop_offsets {
                if let Some(&start) = selection.start_offsets.get(partition) {
                    if start >= 0 && stop >= 0 && stop < start {
                        return Err(invalid(
                            "stop_offsets",
                            format!(
                                "the stop offset {stop} of topic '{}' partition {partition} is \
                                 before its start offset {start}",
                                selection.topic
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Self {
            topics,
            partitions,
            cutoff_ms,
            ranges: None,
            on_missing: OnMissing::Fail,
            topic_patterns: Vec::new(),
        })
    }

    /// Read exactly `ranges` (`parameter` names them in errors): per partition, from its
    /// start (inclusive) to its stop (exclusive). A partition may have several ranges that
    /// do not overlap (the pieces of `kafka_offsets(..., split_size := N)`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `parameter` for no ranges, an illegal topic name, a
    /// negative partition or offset, a stop before its start, or overlapping ranges.
    pub fn from_ranges(parameter: &str, ranges: Vec<PartitionRange>) -> Result<Self> {
        if ranges.is_empty() {
            return Err(invalid(
                parameter,
                "expected at least one range (topic, partition, start_offset, stop_offset)".into(),
            ));
        }
        for range in &ranges {
            crate::validate_topic_name(parameter, &range.topic)?;
            let at = || format!("topic '{}' partition {}", range.topic, range.partition);
            if range.partition < 0 {
                return Err(invalid(
                    parameter,
                    format!(
                        "partition numbers start at 0, found {} ({})",
                        range.partition,
                        at()
                    ),
                ));
            }
            if range.start < 0 || range.stop < 0 {
                return Err(invalid(
                    parameter,
                    format!(
                        "offsets start at 0, found [{}, {}) for {}",
                        range.start,
                        range.stop,
                        at()
                    ),
                ));
            }
            if range.stop < range.start {
                return Err(invalid(
                    parameter,
                    format!(
                        "the stop offset {} is before the start offset {} for {}",
                        range.stop,
                        range.start,
                        at()
                    ),
                ));
            }
        }
        let mut sorted: Vec<&PartitionRange> = ranges.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.topic, a.partition, a.start).cmp(&(&b.topic, b.partition, b.start))
        });
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.topic == b.topic && a.partition == b.partition && b.start < a.stop {
                return Err(invalid(
                    parameter,
                    format!(
                        "ranges [{}, {}) and [{}, {}) of topic '{}' partition {} overlap",
                        a.start, a.stop, b.start, b.stop, a.topic, a.partition
                    ),
                ));
            }
        }
        let mut topics: Vec<TopicSelection> = Vec::new();
        for range in &sorted {
            if topics.last().is_none_or(|t| t.topic != range.topic) {
                topics.push(TopicSelection::new(
                    range.topic.clone(),
                    StartPolicy::Earliest,
                ));
            }
        }
        Ok(Self {
            topics,
            partitions: None,
            cutoff_ms: None,
            ranges: Some(sorted.into_iter().cloned().collect()),
            on_missing: OnMissing::Fail,
            topic_patterns: Vec::new(),
        })
    }

    /// What a start below the log start does (default: fail).
    #[must_use]
    pub fn with_on_missing(mut self, on_missing: OnMissing) -> Self {
        self.on_missing = on_missing;
        self
    }

    /// Record the patterns the topics were chosen by (see [`ScanSelection::topic_patterns`]).
    #[must_use]
    pub fn with_topic_patterns(mut self, patterns: Vec<TopicPattern>) -> Self {
        self.topic_patterns = patterns;
        self
    }

    /// The same start policy for every topic of a comma-separated list (the SQL form).
    ///
    /// # Errors
    /// As [`crate::parse_topic_list`] and [`ScanSelection::new`].
    pub fn for_topic_list(
        topics: &str,
        start: StartPolicy,
        partitions: Option<Vec<i32>>,
        cutoff_ms: Option<i64>,
    ) -> Result<Self> {
        let topics = crate::parse_topic_list("topics", topics)?
            .into_iter()
            .map(|topic| TopicSelection::new(topic, start))
            .collect();
        Self::new(topics, partitions, cutoff_ms)
    }
}

/// Kafka timestamps count milliseconds from 1970-01-01: the brokers refuse to look up an
/// earlier one.
fn check_not_before_epoch(parameter: &str, ms: i64) -> Result<()> {
    if ms < 0 {
        return Err(invalid(
            parameter,
            format!(
                "expected a timestamp at or after 1970-01-01T00:00:00Z (Kafka timestamps count \
                 from there), found {}",
                format_timestamp_ms(ms)
            ),
        ));
    }
    Ok(())
}

fn invalid(parameter: &str, reason: String) -> Error {
    Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_policy_defaults_follow_parameters() {
        assert_eq!(
            StartPolicy::from_parameters(None, None, None).unwrap(),
            StartPolicy::Earliest
        );
        assert_eq!(
            StartPolicy::from_parameters(None, Some(5), None).unwrap(),
            StartPolicy::Timestamp(5)
        );
        assert_eq!(
            StartPolicy::from_parameters(None, None, Some(Duration::from_secs(60))).unwrap(),
            StartPolicy::Relative(Duration::from_secs(60))
        );
        assert_eq!(
            StartPolicy::from_parameters(Some(" LATEST "), None, None).unwrap(),
            StartPolicy::Latest
        );
    }

    #[test]
    fn test_policy_errors_name_the_parameter() {
        type Case<'a> = (Option<&'a str>, Option<i64>, Option<Duration>, &'a str);
        let cases: [Case; 6] = [
            (
                Some("newest"),
                None,
                None,
                "invalid policy: expected one of 'earliest', 'latest', 'timestamp', 'relative', found 'newest'",
            ),
            (
                Some("timestamp"),
                None,
                None,
                "invalid start: policy 'timestamp' needs a start timestamp",
            ),
            (
                Some("relative"),
                None,
                None,
                "invalid lookback: policy 'relative' needs a lookback interval",
            ),
            (
                Some("earliest"),
                Some(1),
                None,
                "invalid start: policy 'earliest' takes no start; leave it out",
            ),
            (
                Some("timestamp"),
                Some(1),
                Some(Duration::from_secs(1)),
                "invalid lookback: policy 'timestamp' takes no lookback; leave it out",
            ),
            (
                None,
                Some(1),
                Some(Duration::from_secs(1)),
                "invalid start: give either start (policy 'timestamp') or lookback (policy 'relative'), not both",
            ),
        ];
        for (policy, start, lookback, expected) in cases {
            let error = StartPolicy::from_parameters(policy, start, lookback).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn test_policy_relative_start_timestamp() {
        let policy = StartPolicy::Relative(Duration::from_secs(60));
        assert_eq!(policy.start_timestamp(100_000), Some(40_000));
        // Never before the epoch.
        assert_eq!(policy.start_timestamp(10), Some(0));
        assert_eq!(StartPolicy::Earliest.start_timestamp(10), None);
    }

    #[test]
    fn test_selection_checks() {
        let select = |partitions: Option<Vec<i32>>, cutoff: Option<i64>| {
            ScanSelection::for_topic_list("a,b", StartPolicy::Timestamp(100), partitions, cutoff)
        };
        assert_eq!(
            select(Some(vec![2, 0]), Some(100)).unwrap().partitions,
            Some(vec![0, 2])
        );
        let text = |r: Result<ScanSelection>| r.unwrap_err().to_string();
        assert_eq!(
            text(select(Some(vec![1, 1]), None)),
            "invalid partitions: partition 1 is listed twice"
        );
        assert_eq!(
            text(select(Some(vec![-1]), None)),
            "invalid partitions: partition numbers start at 0, found -1"
        );
        assert!(text(select(Some(vec![]), None))
            .starts_with("invalid partitions: expected at least one"));
        assert_eq!(
            text(select(None, Some(-1))),
            "invalid cutoff: expected a timestamp at or after 1970-01-01T00:00:00Z (Kafka \
             timestamps count from there), found 1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            StartPolicy::from_parameters(None, Some(-86_400_000), None)
                .unwrap_err()
                .to_string(),
            "invalid start: expected a timestamp at or after 1970-01-01T00:00:00Z (Kafka \
             timestamps count from there), found 1969-12-31T00:00:00Z"
        );
        assert_eq!(
            text(select(None, Some(99))),
            "invalid cutoff: the cutoff (1970-01-01T00:00:00.099Z) is before the start \
             (1970-01-01T00:00:00.100Z) of topic 'a'"
        );
        assert_eq!(
            text(ScanSelection::for_topic_list(
                "a,a",
                StartPolicy::Earliest,
                None,
                None
            )),
            "invalid topics: topic 'a' is listed twice"
        );
    }
}
