//! Offset resolution: before the first row, every partition a scan reads gets a start and a
//! stop offset, so the scan reads exactly `[start, stop)`.
//!
//! - start, by policy: the log start (`earliest`), the end of the log (`latest`), or the first
//!   offset whose timestamp is at or after T (`timestamp`, `relative`);
//! - stop: the end of the log at resolution time (the last stable offset under
//!   `read_committed`, the default), or, with a cutoff C, the lower of that and the first
//!   offset whose timestamp is at or after C.
//!
//! Lookups are batched: one `ListOffsets` request per leader broker for the starts, one for
//! the ends, and one for the cutoff, whatever the number of partitions.

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::Offset;

use crate::error::{Error, Result};
use crate::metadata::{list_offsets, topic_partition_ids};
use crate::selection::{ScanSelection, StartPolicy};
use crate::settings::ClientSettings;

/// The offsets one partition is read between: `[start, stop)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset to read.
    pub start: i64,
    /// The offset at which the partition is done; `start == stop` means nothing to read.
    pub stop: i64,
}

impl PartitionRange {
    /// How many offsets lie in the range. Transaction markers and compacted records take
    /// offsets too, so this bounds the message count from above.
    pub fn offsets(&self) -> i64 {
        self.stop - self.start
    }
}

/// Resolve the start and stop offset of every selected partition, in (topic, partition)
/// order, at time `now_ms` (for relative starts).
///
/// # Errors
/// [`Error::UnknownTopic`], [`Error::InvalidParameter`] naming `partitions` when a requested
/// partition does not exist, and the errors of metadata and offset requests.
pub fn resolve_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    selection: &ScanSelection,
    now_ms: i64,
) -> Result<Vec<PartitionRange>> {
    let deadline = Instant::now() + settings.timeout();

    // (topic, start policy, partition) for every partition read, in output order.
    let mut selected: Vec<(&str, StartPolicy, i32)> = Vec::new();
    let mut topics: Vec<&crate::selection::TopicSelection> = selection.topics.iter().collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    for topic in topics {
        let ids = topic_partition_ids(consumer, settings, &topic.topic, deadline)?;
        let chosen = match &selection.partitions {
            None => ids,
            Some(wanted) => {
                if let Some(missing) = wanted.iter().find(|p| !ids.contains(p)) {
                    return Err(Error::InvalidParameter {
                        parameter: "partitions".into(),
                        reason: format!(
                            "partition {missing} does not exist in topic '{}', which has {}",
                            topic.topic,
                            describe_partitions(&ids)
                        ),
                    });
                }
                wanted.clone()
            }
        };
        selected.extend(
            chosen
                .into_iter()
                .map(|p| (topic.topic.as_str(), topic.start, p)),
        );
    }

    let starts = list_offsets(
        consumer,
        settings,
        selected.iter().map(|&(topic, policy, partition)| {
            let at = match policy {
                StartPolicy::Earliest => Offset::Beginning,
                StartPolicy::Latest => Offset::End,
                timed => Offset::Offset(timed.start_timestamp(now_ms).unwrap_or(0)),
            };
            (topic, partition, at)
        }),
        deadline,
    )?;
    let ends = list_offsets(
        consumer,
        settings,
        selected
            .iter()
            .map(|&(topic, _, partition)| (topic, partition, Offset::End)),
        deadline,
    )?;
    let cutoffs = match selection.cutoff_ms {
        None => vec![None; selected.len()],
        Some(cutoff) => list_offsets(
            consumer,
            settings,
            selected
                .iter()
                .map(|&(topic, _, partition)| (topic, partition, Offset::Offset(cutoff))),
            deadline,
        )?,
    };

    Ok(selected
        .iter()
        .zip(starts)
        .zip(ends)
        .zip(cutoffs)
        .map(|(((&(topic, _, partition), start), end), cutoff)| {
            let range = bound_range(start, end.unwrap_or(0), cutoff);
            PartitionRange {
                topic: topic.to_owned(),
                partition,
                start: range.0,
                stop: range.1,
            }
        })
        .collect())
}

/// Combine the lookups of one partition into `[start, stop)`.
///
/// - `start`: the start lookup; `None` when a timestamp lookup found no message at or after
///   it (so nothing is read);
/// - `end`: the end of the log (last stable offset) at resolution time;
/// - `cutoff`: the first offset at or after the cutoff timestamp, `None` when there is none
///   (or no cutoff), which leaves the end as the stop.
///
/// The start never lies past the stop.
pub fn bound_range(start: Option<i64>, end: i64, cutoff: Option<i64>) -> (i64, i64) {
    let stop = cutoff.map_or(end, |cutoff| cutoff.min(end));
    let start = start.unwrap_or(stop).min(stop);
    (start, stop)
}

/// `0..3` for contiguous ids, else the list.
fn describe_partitions(ids: &[i32]) -> String {
    match ids {
        [] => "no partitions".into(),
        [only] => format!("only partition {only}"),
        [first, .., last] if (last - first) as usize == ids.len() - 1 => {
            format!("partitions {first}..{last}")
        }
        _ => format!(
            "partitions {}",
            ids.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_bound_range_cases() {
        // No cutoff: read to the end.
        assert_eq!(bound_range(Some(3), 10, None), (3, 10));
        // Cutoff inside the log.
        assert_eq!(bound_range(Some(3), 10, Some(7)), (3, 7));
        // Cutoff past the stable end: the end wins.
        assert_eq!(bound_range(Some(3), 10, Some(12)), (3, 10));
        // Timestamp start after every message: nothing.
        assert_eq!(bound_range(None, 10, None), (10, 10));
        // Start after the cutoff: nothing, and start never passes stop.
        assert_eq!(bound_range(Some(8), 10, Some(5)), (5, 5));
    }

    #[test]
    fn test_describe_partitions() {
        assert_eq!(describe_partitions(&[0, 1, 2, 3]), "partitions 0..3");
        assert_eq!(describe_partitions(&[0]), "only partition 0");
        assert_eq!(describe_partitions(&[0, 2]), "partitions 0, 2");
    }

    proptest! {
        #[test]
        fn test_bound_range_is_within_log(start in proptest::option::of(0i64..100), end in 0i64..100, cutoff in proptest::option::of(0i64..100)) {
            let start = start.map(|s| s.min(end));
            let cutoff = cutoff.map(|c| c.min(end));
            let (from, to) = bound_range(start, end, cutoff);
            prop_assert!(from <= to);
            prop_assert!(to <= end);
            if let Some(c) = cutoff { prop_assert!(to <= c); }
            if let Some(s) = start { prop_assert!(from <= s); }
        }
    }
}
