//! What a scan reads: which topics and partitions, where each partition starts (the start
//! policy) and where the replay ends (the cutoff). Checked before any request is sent.

use std::time::Duration;

use crate::error::{format_timestamp_ms, Error, Result};

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
    /// Where its partitions start.
    pub start: StartPolicy,
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
        Ok(Self {
            topics,
            partitions,
            cutoff_ms,
        })
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
            .map(|topic| TopicSelection { topic, start })
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
