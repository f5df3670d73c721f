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
use crate::selection::{OnMissing, ScanSelection, StartPolicy, TopicSelection, END_OFFSET};
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

/// A resolved range and, when resolution moved its start, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRange {
    /// The offsets to read.
    pub range: PartitionRange,
    /// Set when `on_missing := 'skip'` moved a start that retention had deleted to the log
    /// start: says from where to where.
    pub note: Option<String>,
}

/// Resolve the start and stop offset of every selected partition, in (topic, partition)
/// order, at time `now_ms` (for relative starts).
///
/// # Errors
/// As [`resolve_plan`].
pub fn resolve_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    selection: &ScanSelection,
    now_ms: i64,
) -> Result<Vec<PartitionRange>> {
    Ok(resolve_plan(consumer, settings, selection, now_ms)?
        .into_iter()
        .map(|planned| planned.range)
        .collect())
}

/// Resolve every selected partition's `[start, stop)` with a note where a start was moved:
///
/// - an explicit plan (`selection.ranges`) is checked against the log: every partition must
///   exist, no start may lie below the log start (unless `on_missing` skips) and no stop past
///   the end;
/// - otherwise each partition starts at its explicit start offset or by its topic's policy,
///   and stops at its explicit stop offset or at the end of the log, bounded by the cutoff.
///
/// Lookups are batched: one `ListOffsets` request per leader broker for the log starts (or
/// policy starts), one for the ends, one for the cutoff.
///
/// # Errors
/// [`Error::UnknownTopic`]; [`Error::InvalidParameter`] naming `partitions`, `start_offsets`,
/// `stop_offsets` or `ranges` for a partition that does not exist, a start offset below the
/// log start (retention deleted it) or past the end, or a stop offset past the end; and the
/// errors of metadata and offset requests.
pub fn resolve_plan<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    selection: &ScanSelection,
    now_ms: i64,
) -> Result<Vec<PlannedRange>> {
    let deadline = Instant::now() + settings.timeout();
    if let Some(ranges) = &selection.ranges {
        return resolve_ranges(consumer, settings, ranges, selection.on_missing, deadline);
    }

    // Every partition read, in output order.
    let mut selected: Vec<Selected> = Vec::new();
    let mut topics: Vec<&TopicSelection> = selection.topics.iter().collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    for topic in topics {
        let ids = topic_partition_ids(consumer, settings, &topic.topic, deadline)?;
        let check = |parameter: &str, partition: &i32| {
            if ids.contains(partition) {
                return Ok(());
            }
            Err(Error::InvalidParameter {
                parameter: parameter.into(),
                reason: format!(
                    "partition {partition} does not exist in topic '{}', which has {}",
                    topic.topic,
                    describe_partitions(&ids)
                ),
            })
        };
        if let Some(wanted) = &selection.partitions {
            wanted.iter().try_for_each(|p| check("partitions", p))?;
        }
        topic
            .start_offsets
            .keys()
            .try_for_each(|p| check("start_offsets", p))?;
        topic
            .stop_offsets
            .keys()
            .try_for_each(|p| check("stop_offsets", p))?;
        let chosen = selection.partitions.clone().unwrap_or(ids);
        selected.extend(chosen.into_iter().map(|partition| Selected {
            topic: &topic.topic,
            partition,
            start: match topic.start_offsets.get(&partition) {
                Some(&offset) => Start::Offset(offset),
                None => Start::Policy(topic.start),
            },
            stop: topic.stop_offsets.get(&partition).copied(),
        }));
    }

    // The start lookup: the log start where an explicit offset must be checked against it.
    let starts = list_offsets(
        consumer,
        settings,
        selected.iter().map(|s| {
            let at = match s.start {
                Start::Policy(StartPolicy::Earliest) => Offset::Beginning,
                Start::Policy(StartPolicy::Latest) | Start::Offset(END_OFFSET) => Offset::End,
                Start::Policy(timed) => Offset::Offset(timed.start_timestamp(now_ms).unwrap_or(0)),
                Start::Offset(_) => Offset::Beginning,
            };
            (s.topic, s.partition, at)
        }),
        deadline,
    )?;
    let ends = list_offsets(
        consumer,
        settings,
        selected.iter().map(|s| (s.topic, s.partition, Offset::End)),
        deadline,
    )?;
    let cutoffs = match selection.cutoff_ms {
        None => vec![None; selected.len()],
        Some(cutoff) => list_offsets(
            consumer,
            settings,
            selected
                .iter()
                .map(|s| (s.topic, s.partition, Offset::Offset(cutoff))),
            deadline,
        )?,
    };

    let mut planned = Vec::with_capacity(selected.len());
    for ((s, looked_up), (end, cutoff)) in selected
        .iter()
        .zip(starts)
        .zip(ends.into_iter().zip(cutoffs))
    {
        let end = end.unwrap_or(0);
        let mut note = None;
        let start = match s.start {
            Start::Offset(offset) if offset >= 0 => {
                let log_start = looked_up.unwrap_or(0);
                let checked = check_start(
                    "start_offsets",
                    s.topic,
                    s.partition,
                    offset,
                    log_start,
                    end,
                    selection.on_missing,
                )?;
                note = checked.1;
                Some(checked.0)
            }
            _ => looked_up,
        };
        let (start, stop) = match s.stop {
            Some(stop) => {
                let stop = if stop == END_OFFSET { end } else { stop };
                check_stop("stop_offsets", s.topic, s.partition, stop, end)?;
                let start = start.unwrap_or(stop);
                if start > stop {
                    return Err(Error::InvalidParameter {
                        parameter: "stop_offsets".into(),
                        reason: format!(
                            "the stop offset {stop} of topic '{}' partition {} is before its \
                             start offset {start}",
                            s.topic, s.partition
                        ),
                    });
                }
                (start, stop)
            }
            None => bound_range(start, end, cutoff),
        };
        planned.push(PlannedRange {
            range: PartitionRange {
                topic: s.topic.to_owned(),
                partition: s.partition,
                start,
                stop,
            },
            note,
        });
    }
    Ok(planned)
}

/// Where one selected partition starts: an explicit offset or its topic's policy.
#[derive(Clone, Copy)]
enum Start {
    Offset(i64),
    Policy(StartPolicy),
}

/// One partition to resolve.
struct Selected<'a> {
    topic: &'a str,
    partition: i32,
    start: Start,
    stop: Option<i64>,
}

/// Check an explicit plan against the log (see [`resolve_plan`]).
fn resolve_ranges<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &ClientSettings,
    ranges: &[PartitionRange],
    on_missing: OnMissing,
    deadline: Instant,
) -> Result<Vec<PlannedRange>> {
    let mut partitions: Vec<(&str, i32)> = Vec::new();
    for range in ranges {
        if partitions.last() != Some(&(range.topic.as_str(), range.partition)) {
            partitions.push((&range.topic, range.partition));
        }
    }
    let mut known: Vec<(&str, Vec<i32>)> = Vec::new();
    for &(topic, partition) in &partitions {
        if known.last().is_none_or(|(t, _)| *t != topic) {
            known.push((
                topic,
                topic_partition_ids(consumer, settings, topic, deadline)?,
            ));
        }
        let ids = &known
            .last()
            .map(|(_, ids)| ids.as_slice())
            .unwrap_or_default();
        if !ids.contains(&partition) {
            return Err(Error::InvalidParameter {
                parameter: "ranges".into(),
                reason: format!(
                    "partition {partition} does not exist in topic '{topic}', which has {}",
                    describe_partitions(ids)
                ),
            });
        }
    }
    let log_starts = list_offsets(
        consumer,
        settings,
        partitions.iter().map(|&(t, p)| (t, p, Offset::Beginning)),
        deadline,
    )?;
    let ends = list_offsets(
        consumer,
        settings,
        partitions.iter().map(|&(t, p)| (t, p, Offset::End)),
        deadline,
    )?;
    let mut planned = Vec::with_capacity(ranges.len());
    for range in ranges {
        let index = partitions
            .iter()
            .position(|&(t, p)| t == range.topic && p == range.partition)
            .unwrap_or_default();
        let (log_start, end) = (log_starts[index].unwrap_or(0), ends[index].unwrap_or(0));
        check_stop("ranges", &range.topic, range.partition, range.stop, end)?;
        let (start, note) = check_start(
            "ranges",
            &range.topic,
            range.partition,
            range.start,
            log_start,
            end,
            on_missing,
        )?;
        // A range wholly deleted by retention is skipped whole: it stays empty.
        let start = start.min(range.stop);
        planned.push(PlannedRange {
            range: PartitionRange {
                start,
                ..range.clone()
            },
            note,
        });
    }
    Ok(planned)
}

/// Check an explicit start offset against the log: below the log start (deleted by
/// retention) is an error unless `on_missing` skips to the log start; past the end is an
/// error. Returns the start to use and, when it moved, a note saying so.
fn check_start(
    parameter: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    log_start: i64,
    end: i64,
    on_missing: OnMissing,
) -> Result<(i64, Option<String>)> {
    if offset > end {
        return Err(Error::InvalidParameter {
            parameter: parameter.into(),
            reason: format!(
                "the start offset {offset} of topic '{topic}' partition {partition} is past the \
                 end of the log ({end})"
            ),
        });
    }
    if offset >= log_start {
        return Ok((offset, None));
    }
    match on_missing {
        OnMissing::Fail => Err(Error::InvalidParameter {
            parameter: parameter.into(),
            reason: format!(
                "the start offset {offset} of topic '{topic}' partition {partition} is below the \
                 log start {log_start}: retention deleted offsets {offset}..{}; use on_missing \
                 := 'skip' to start at the log start",
                log_start - 1
            ),
        }),
        OnMissing::Skip => Ok((
            log_start,
            Some(format!(
                "offsets {offset}..{} were deleted by retention; starting at the log start \
                 {log_start}",
                log_start - 1
            )),
        )),
    }
}

/// A stop offset past the end of the log would wait for messages that may never come.
fn check_stop(parameter: &str, topic: &str, partition: i32, stop: i64, end: i64) -> Result<()> {
    if stop > end {
        return Err(Error::InvalidParameter {
            parameter: parameter.into(),
            reason: format!(
                "the stop offset {stop} of topic '{topic}' partition {partition} is past the end \
                 of the log ({end})"
            ),
        });
    }
    Ok(())
}

/// Cut every range longer than `split_size` offsets into consecutive pieces of `split_size`
/// (the last one shorter), so that more readers than partitions share the work. Order is
/// kept: a partition's pieces follow each other in offset order.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `split_size` when it is below 1.
pub fn split_ranges(ranges: Vec<PartitionRange>, split_size: i64) -> Result<Vec<PartitionRange>> {
    if split_size < 1 {
        return Err(Error::InvalidParameter {
            parameter: "split_size".into(),
            reason: format!("expected a number of offsets of at least 1, found {split_size}"),
        });
    }
    let mut pieces = Vec::with_capacity(ranges.len());
    for range in ranges {
        if range.offsets() <= split_size {
            pieces.push(range);
            continue;
        }
        let mut start = range.start;
        while start < range.stop {
            let stop = start.saturating_add(split_size).min(range.stop);
            pieces.push(PartitionRange {
                topic: range.topic.clone(),
                partition: range.partition,
                start,
                stop,
            });
            start = stop;
        }
    }
    Ok(pieces)
}

/// The smallest piece [`default_split_size`] chooses: a reader's start-up (a consumer, its
/// first fetch) should stay small next to its work.
pub const MIN_DEFAULT_SPLIT_SIZE: i64 = 100_000;

/// A split size that gives each of `workers` readers about an equal share of `ranges`'
/// offsets, but no piece below [`MIN_DEFAULT_SPLIT_SIZE`]: with fewer partitions than
/// readers, or one partition far larger than the rest, every reader still gets work.
pub fn default_split_size(ranges: &[PartitionRange], workers: usize) -> i64 {
    let total: i64 = ranges.iter().map(|r| r.offsets().max(0)).sum();
    let workers = i64::try_from(workers.max(1)).unwrap_or(i64::MAX);
    (total.saturating_add(workers - 1) / workers).max(MIN_DEFAULT_SPLIT_SIZE)
}

/// Join each partition's adjacent ranges (`[0, 10)` and `[10, 20)` become `[0, 20)`), for
/// readers that read one range per partition. `ranges` must be sorted by topic, partition
/// and start.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `parameter` when a partition's ranges leave a gap: one
/// consumer reads one contiguous range per partition.
pub fn coalesce_ranges(
    parameter: &str,
    ranges: Vec<PartitionRange>,
) -> Result<Vec<PartitionRange>> {
    let mut joined: Vec<PartitionRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(last) = joined.last_mut() {
            if last.topic == range.topic && last.partition == range.partition {
                if range.start == range.stop {
                    // Nothing to read: it cannot leave a gap.
                    continue;
                }
                if last.start == last.stop {
                    *last = range;
                    continue;
                }
                if last.stop == range.start {
                    last.stop = range.stop;
                    continue;
                }
                return Err(Error::InvalidParameter {
                    parameter: parameter.into(),
                    reason: format!(
                        "topic '{}' partition {} has a gap between [{}, {}) and [{}, {}); an \
                         ordered scan reads one contiguous range per partition (ordered := \
                         false reads ranges with gaps)",
                        range.topic,
                        range.partition,
                        last.start,
                        last.stop,
                        range.start,
                        range.stop
                    ),
                });
            }
        }
        joined.push(range);
    }
    Ok(joined)
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

    fn range(partition: i32, start: i64, stop: i64) -> PartitionRange {
        PartitionRange {
            topic: "t".into(),
            partition,
            start,
            stop,
        }
    }

    #[test]
    fn test_split_ranges_cuts_long_ranges_in_order() {
        let pieces = split_ranges(vec![range(0, 0, 25), range(1, 5, 10)], 10).unwrap();
        assert_eq!(
            pieces,
            vec![
                range(0, 0, 10),
                range(0, 10, 20),
                range(0, 20, 25),
                range(1, 5, 10)
            ]
        );
        assert_eq!(
            split_ranges(vec![range(0, 0, 1)], 0)
                .unwrap_err()
                .to_string(),
            "invalid split_size: expected a number of offsets of at least 1, found 0"
        );
    }

    #[test]
    fn test_default_split_size_shares_work() {
        // One partition of 10M offsets on 4 readers: four pieces.
        assert_eq!(default_split_size(&[range(0, 0, 10_000_000)], 4), 2_500_000);
        // Small topics are not cut into tiny pieces.
        assert_eq!(
            default_split_size(&[range(0, 0, 1_000)], 8),
            MIN_DEFAULT_SPLIT_SIZE
        );
        assert_eq!(default_split_size(&[], 0), MIN_DEFAULT_SPLIT_SIZE);
    }

    #[test]
    fn test_coalesce_ranges_joins_adjacent_and_refuses_gaps() {
        let joined = coalesce_ranges(
            "ranges",
            vec![
                range(0, 0, 10),
                range(0, 10, 20),
                range(0, 25, 25),
                range(1, 3, 3),
                range(1, 3, 8),
            ],
        )
        .unwrap();
        assert_eq!(joined, vec![range(0, 0, 20), range(1, 3, 8)]);
        assert_eq!(
            coalesce_ranges("ranges", vec![range(0, 0, 10), range(0, 20, 30)])
                .unwrap_err()
                .to_string(),
            "invalid ranges: topic 't' partition 0 has a gap between [0, 10) and [20, 30); an \
             ordered scan reads one contiguous range per partition (ordered := false reads \
             ranges with gaps)"
        );
    }

    proptest! {
        #[test]
        fn test_split_then_coalesce_is_identity(lengths in proptest::collection::vec(0i64..50, 1..5), split in 1i64..20) {
            let ranges: Vec<PartitionRange> = lengths
                .iter()
                .enumerate()
                .map(|(p, &len)| range(p as i32, 7, 7 + len))
                .collect();
            let pieces = split_ranges(ranges.clone(), split).unwrap();
            prop_assert!(pieces.iter().all(|r| r.offsets() <= split));
            let total: i64 = pieces.iter().map(PartitionRange::offsets).sum();
            prop_assert_eq!(total, lengths.iter().sum::<i64>());
            prop_assert_eq!(coalesce_ranges("ranges", pieces).unwrap(), ranges);
        }

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
