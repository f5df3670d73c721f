//! An ordered scan: resolve the offsets, fetch every partition from its start to its stop,
//! and release messages through the [`OrderedMerge`] under the memory budget.
//!
//! # Bounded and follow mode
//!
//! A bounded scan ends when every partition has reached its stop. In follow mode the replay
//! of `[start, stop)` comes first, in strict order, exactly as a bounded scan returns it;
//! messages at or past a partition's stop wait in librdkafka's queue until the whole replay
//! has been returned. The replay is defined by offsets, not timestamps: it is every message
//! before each partition's stop offset. A message stamped before a `cutoff` but written after
//! a later-stamped one of its partition lies past the stop, and comes after the replay.
//!
//! Then the scan is *live* ([`Scan::is_live`]): every partition keeps delivering what
//! arrives, still merged by timestamp while every partition has messages waiting. A partition
//! that has reached the end of its log (the high watermark the broker reported with its last
//! fetch) and has nothing buffered has nothing to say: it stops holding the others back at
//! once, and joins the merge again with its next message. A partition that has not reached
//! its end but delivers nothing (a broker that does not answer) stops holding them back after
//! the idle timeout. Live order is therefore best effort: a message that arrives at a
//! partition after the others' later-stamped messages were released comes after them.
//!
//! # Partitions added while following
//!
//! A bounded scan reads the partitions it resolved, however the topics change meanwhile. A
//! follow-mode scan also reads partitions created while it runs: every
//! [`ScanOptions::metadata_refresh`] it asks the cluster for the metadata of what it
//! [watches](Watch) (its topics, and topics created later that match its patterns), and
//! starts reading each partition it does not read yet from the partition's log start. Such a
//! partition joins as a new source, after the others in [`Scan::ranges`], with an empty
//! replay range (`start == stop`, the log start): the replay stays exactly a bounded scan's,
//! and the partition's messages wait in librdkafka's queue, as messages past a stop do,
//! until the scan is live. Found once live, it holds the merge back only from its first
//! message on (as a partition idle since then would). On equal timestamps it ranks after the
//! partitions found before it. A failed metadata request is not an error: the next interval
//! asks again.
//!
//! # Memory
//!
//! `max_buffer_bytes` bounds our buffers plus librdkafka's prefetch queues (see
//! [`BudgetSplit`]). A partition whose messages are not needed yet is simply not read while our
//! buffers are full: its librdkafka queue fills to its share and fetching it stops. The
//! partition the merge waits for is always read, so the scan never deadlocks on its budget.
//! A partition whose queue holds all that is left of its range is read whole even then:
//! librdkafka has fetched it already, and holds it at a higher cost than our copy (see
//! [`Scan::take_fetched`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::Offset;

use crate::error::{Error, Result};
use crate::fetch::{close_consumer, create_consumer, BudgetSplit, Fetcher, Polled, MAX_BATCH};
use crate::merge::OrderedMerge;
use crate::metadata::list_offsets;
use crate::record::{Fields, Record};
use crate::resolve::{
    coalesce_ranges, resolve_offsets, resolve_plan, PartitionRange, PlannedRange,
};
use crate::selection::ScanSelection;
use crate::settings::ClientSettings;
use crate::watch::Watch;

/// The default memory budget: 256 MiB.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 256 * 1_048_576;
/// The smallest budget accepted: below this librdkafka's minimum fetch sizes dominate.
pub const MIN_MAX_BUFFER_BYTES: usize = 64 * 1024;
/// How long a fill round waits for data when no partition had any.
const FILL_WAIT: Duration = Duration::from_millis(50);
/// After this long without progress, a scan checks that its topics still exist, and again
/// every this long while nothing arrives.
const DELETION_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long that check may wait for the cluster's answer.
const DELETION_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How many messages a partition the merge waits for may take when the buffers are full.
const BLOCKED_BATCH: usize = 16;
/// How often, at most, a scan over its budget looks for partitions that librdkafka has
/// fetched up to their stop (see [`Scan::take_fetched`]). A look asks every unfinished
/// partition's queue for its length, one lock each.
const FETCHED_LOOK_INTERVAL: Duration = Duration::from_millis(1);
/// The record size assumed before any was seen, to size the first batches under the budget.
const FIRST_RECORD_BYTES_GUESS: usize = 1024;

/// The default idle timeout of follow mode: 1 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often follow mode looks for new partitions by default: 5 s. librdkafka refreshes the
/// metadata of subscribed topics every `topic.metadata.refresh.interval.ms` (5 minutes by
/// default); a followed scan wants a new partition's first messages sooner, and one small
/// metadata request every few seconds costs the cluster little.
pub const DEFAULT_METADATA_REFRESH: Duration = Duration::from_secs(5);
/// How long one look for new partitions may hold up reading, for each of its two requests
/// (metadata, then the new partitions' log starts). A look that does not finish in time is
/// made again at the next interval.
const METADATA_REFRESH_TIMEOUT: Duration = Duration::from_secs(1);

/// How a scan reads, beyond what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// The memory budget in bytes: our buffers plus librdkafka's prefetch.
    pub max_buffer_bytes: usize,
    /// Which optional fields to copy.
    pub fields: Fields,
    /// Keep reading after the stop offsets (follow mode).
    pub follow: bool,
    /// Follow mode, once live: how long a partition that delivers nothing, without having
    /// reached the end of its log, may hold the merge back (one at its end never does).
    pub idle_timeout: Duration,
    /// Merge the partitions by timestamp (the default). Without, rows come as they arrive and
    /// only each partition's offset order holds.
    pub ordered: bool,
    /// Follow mode: how often to look for partitions created since (see the module docs);
    /// more than zero.
    pub metadata_refresh: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            fields: Fields::ALL,
            follow: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            ordered: true,
            metadata_refresh: DEFAULT_METADATA_REFRESH,
        }
    }
}

/// One partition of a running scan, as [`Scan::partition_state`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The resolved start offset.
    pub start: i64,
    /// The resolved stop offset.
    pub stop: i64,
    /// The offset after the last message returned (the start before any).
    pub position: i64,
    /// Messages buffered by kafkars, fetched but not yet returned.
    pub buffered_messages: usize,
    /// Their bytes, as counted against the budget.
    pub buffered_bytes: usize,
    /// Whether the partition was left unread in the last round to stay within the budget.
    pub paused: bool,
    /// Whether every message before the stop has been returned.
    pub live: bool,
}

impl ScanOptions {
    /// Check the options.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `max_buffer_bytes` when it is below
    /// [`MIN_MAX_BUFFER_BYTES`], or `metadata_refresh` when it is zero.
    pub fn validate(&self) -> Result<()> {
        // The rule, and its message, of the SQL parameter.
        crate::settings::positive_duration_from_micros(
            "metadata_refresh",
            i64::try_from(self.metadata_refresh.as_micros()).unwrap_or(i64::MAX),
        )?;
        if self.max_buffer_bytes < MIN_MAX_BUFFER_BYTES {
            return Err(Error::InvalidParameter {
                parameter: "max_buffer_bytes".into(),
                reason: format!(
                    "expected at least {MIN_MAX_BUFFER_BYTES} bytes, found {}",
                    self.max_buffer_bytes
                ),
            });
        }
        Ok(())
    }
}

type MergeKey = fn(&Record) -> (i64, i64);

/// A running scan. Pull rows with [`Scan::next_records`].
pub struct Scan {
    settings: ClientSettings,
    options: ScanOptions,
    ranges: Vec<PartitionRange>,
    fetcher: Fetcher,
    merge: OrderedMerge<Record, MergeKey>,
    /// Follow mode: the replay is complete and the merge runs over live messages.
    live: bool,
    /// Follow mode: per source, the messages past the stop, held until live.
    stash: Vec<VecDeque<Record>>,
    /// Scratch space for one poll's messages; empty between polls.
    polled: Vec<Polled>,
    /// Average bytes of the records seen so far, to size batches under the budget.
    record_bytes: usize,
    /// Bytes buffered per source, and in all.
    buffered: Vec<usize>,
    buffered_total: usize,
    buffer_budget: usize,
    /// The most bytes one `next_records` call returns (see [`BudgetSplit::output_bytes`]).
    output_budget: usize,
    /// Per source: the offset after the last message returned.
    positions: Vec<i64>,
    /// Per source: the offset after the last message taken from librdkafka.
    received: Vec<i64>,
    /// When a scan over its budget last looked for partitions fetched up to their stop.
    last_fetched_look: Instant,
    /// Fill rounds so far.
    round: u64,
    /// Per source: the last fill round that offered it a read. An unfinished source not
    /// offered one in the latest round was left unread to stay within budget.
    offered: Vec<u64>,
    /// Sources the merge may be waiting for, noted as their last buffered record is
    /// returned: over budget, a fill round reads only these instead of looking at every
    /// partition (with 1,000 partitions, such rounds come every few records).
    starved: Vec<usize>,
    /// Per source: when it last delivered something (follow mode's idle timeout).
    last_heard: Vec<Instant>,
    /// Per source: the fetcher reached the end of its log and nothing arrived since
    /// (librdkafka reports an end once). Live, the merge is told at once
    /// ([`OrderedMerge::mark_at_end`]); ends seen during the replay are told to the live merge
    /// when the scan goes live.
    at_end: Vec<bool>,
    /// When a message (or the end of a partition) last arrived.
    last_progress: Instant,
    /// When the topics were last checked for deletion.
    last_deletion_check: Instant,
    /// Follow mode: where to look for partitions to add.
    watch: Watch,
    /// When the watch last looked.
    last_refresh: Instant,
}

impl Scan {
    /// Resolve `selection`'s offsets and start fetching. In follow mode, partitions created
    /// later are read too ([`Watch::for_selection`] says which).
    ///
    /// # Errors
    /// Invalid options, and every error of [`resolve_offsets`] and of creating the consumer.
    pub fn open(
        settings: &ClientSettings,
        selection: &ScanSelection,
        options: ScanOptions,
    ) -> Result<Self> {
        options.validate()?;
        // The split depends on the partition count, which resolution tells; the consumer that
        // resolves must exist first, so it is created for the topic count and the per-partition
        // values are set when the partitions are known.
        let provisional = BudgetSplit::new(options.max_buffer_bytes, selection.topics.len());
        let consumer = create_consumer(settings, &provisional)?;
        let now_ms = now_ms();
        let ranges = resolve_offsets(&consumer, settings, selection, now_ms)
            .and_then(|ranges| {
                // An explicit plan may come in pieces (kafka_offsets' split_size): the merge
                // reads each partition as one range.
                if selection.ranges.is_some() {
                    coalesce_ranges("ranges", ranges)
                } else {
                    Ok(ranges)
                }
            })
            .inspect_err(|_| {
                close_consumer(&consumer);
            })?;
        let budget = BudgetSplit::new(options.max_buffer_bytes, ranges.len());
        let consumer = if budget == provisional {
            consumer
        } else {
            close_consumer(&consumer);
            drop(consumer);
            create_consumer(settings, &budget)?
        };
        let mut scan = Self::start(settings, consumer, ranges, budget, options)?;
        scan.watch(Watch::for_selection(selection));
        Ok(scan)
    }

    /// Read offsets resolved before (by [`plan_scan`]): each range from its start to its
    /// stop. Scans that share out one resolution's partitions read consistent offsets.
    /// Nothing else is read unless [`Scan::watch`] says so.
    ///
    /// # Errors
    /// Invalid options, and errors of creating the consumer and assigning the partitions.
    pub fn open_ranges(
        settings: &ClientSettings,
        ranges: Vec<PartitionRange>,
        options: ScanOptions,
    ) -> Result<Self> {
        options.validate()?;
        let budget = BudgetSplit::new(options.max_buffer_bytes, ranges.len());
        let consumer = create_consumer(settings, &budget)?;
        Self::start(settings, consumer, ranges, budget, options)
    }

    fn start(
        settings: &ClientSettings,
        consumer: Arc<BaseConsumer>,
        ranges: Vec<PartitionRange>,
        budget: BudgetSplit,
        options: ScanOptions,
    ) -> Result<Self> {
        if options.max_buffer_bytes < DEFAULT_MAX_BUFFER_BYTES {
            crate::memory::return_large_blocks_to_system();
        }
        let fetcher = Fetcher::assign(
            consumer,
            settings,
            &ranges,
            options.fields,
            options.follow,
            &budget,
        )?;
        let mut merge = new_merge(ranges.len(), options.ordered);
        for (source, range) in ranges.iter().enumerate() {
            if range.start >= range.stop {
                merge.finish(source);
            }
        }
        let now = Instant::now();
        let mut scan = Self {
            settings: settings.clone(),
            options,
            buffered: vec![0; ranges.len()],
            positions: ranges.iter().map(|r| r.start).collect(),
            received: ranges.iter().map(|r| r.start).collect(),
            last_fetched_look: Instant::now(),
            round: 0,
            offered: vec![0; ranges.len()],
            starved: Vec::new(),
            last_heard: vec![now; ranges.len()],
            at_end: vec![false; ranges.len()],
            stash: (0..ranges.len()).map(|_| VecDeque::new()).collect(),
            polled: Vec::with_capacity(MAX_BATCH),
            record_bytes: FIRST_RECORD_BYTES_GUESS,
            ranges,
            fetcher,
            merge,
            live: false,
            buffered_total: 0,
            buffer_budget: budget.buffers,
            output_budget: budget.output_bytes,
            last_progress: now,
            last_deletion_check: now,
            watch: Watch::default(),
            last_refresh: now,
        };
        scan.go_live_if_replayed()?;
        Ok(scan)
    }

    /// Follow mode: once the replay merge has released everything, switch to the live merge,
    /// seeded with the messages that revealed each partition's stop. Returns whether it
    /// switched now.
    ///
    /// # Errors
    /// A fetch error of the partitions looked at again (see below).
    fn go_live_if_replayed(&mut self) -> Result<bool> {
        if !self.options.follow || self.live || !self.merge.is_done() {
            return Ok(false);
        }
        self.live = true;
        self.merge = new_merge(self.ranges.len(), self.options.ordered);
        let now = Instant::now();
        self.last_heard.fill(now);
        for source in 0..self.ranges.len() {
            // Already charged when stashed.
            while let Some(record) = self.stash[source].pop_front() {
                self.merge.push(source, record);
            }
        }
        for source in 0..self.ranges.len() {
            if self.at_end[source] && self.merge.buffered(source) == 0 {
                // Its end was reached during the replay, whose merge then stopped reading it:
                // what arrived since waits in its queue. One look tells whether it is still
                // at its end or has a message to merge.
                self.receive(source, 1)?;
                if self.at_end[source] {
                    self.merge.mark_at_end(source);
                }
            }
        }
        Ok(true)
    }

    /// Follow mode: from now on, also read the partitions `watch` finds that this scan does
    /// not read yet, looking every [`ScanOptions::metadata_refresh`] (the first look one
    /// interval from now). Replaces what was watched. A bounded scan ignores it: its partition
    /// set stays the one it was opened with.
    ///
    /// Several scans that share out one topic's partitions must not all watch it: each would
    /// read every new partition.
    pub fn watch(&mut self, watch: Watch) {
        if self.options.follow {
            self.watch = watch;
        }
    }

    /// Whether the replay is complete: every message before the stop offsets has been
    /// returned. Only follow-mode scans become live; a bounded scan is then done instead.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Per partition, in the order of [`Scan::ranges`]: offsets, progress and buffering.
    pub fn partition_state(&self) -> Vec<PartitionState> {
        self.ranges
            .iter()
            .enumerate()
            .map(|(source, range)| PartitionState {
                topic: range.topic.clone(),
                partition: range.partition,
                start: range.start,
                stop: range.stop,
                position: self.positions[source],
                buffered_messages: self.merge.buffered(source) + self.stash[source].len(),
                buffered_bytes: self.buffered[source],
                paused: !self.merge.is_finished(source) && self.offered[source] != self.round,
                live: self.live
                    || (self.merge.is_finished(source) && self.merge.buffered(source) == 0),
            })
            .collect()
    }

    /// The partitions this scan reads, with their resolved offsets: those it was opened with
    /// in (topic, partition) order, then the partitions follow mode found later, in the order
    /// found (each with `start == stop`, its log start). A record's `source` indexes this
    /// list; it only grows, so an index stays valid, and a copy taken earlier is a prefix.
    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    /// Bytes buffered by us right now (librdkafka's queues not included).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// Whether every message of a bounded scan has been returned. A follow-mode scan is never
    /// done.
    pub fn is_done(&self) -> bool {
        !self.options.follow && self.merge.is_done()
    }

    /// Append up to `max` more rows, in order, to `out`. Returns once `out` holds `max` more
    /// rows or rows of [`BudgetSplit::output_bytes`] (a 32nd of `max_buffer_bytes`: the
    /// caller's output is in the budget too), once the scan is done, once at least one row
    /// was added and no more is ready, or when `deadline` passes (possibly with no row).
    /// Without a deadline a call adds no row only when the scan is done.
    ///
    /// In follow mode a call never adds replay rows and live rows together: the call that
    /// adds the last rows before the stop offsets returns with them, and [`Scan::is_live`] is
    /// true from then on.
    ///
    /// # Errors
    /// A fetch error, or [`Error::Stalled`] when, before the scan is live, a partition the
    /// merge waits for delivers nothing for the whole timeout.
    pub fn next_records(
        &mut self,
        max: usize,
        out: &mut Vec<Record>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let before = out.len();
        let wanted = before + max;
        let mut output_bytes = 0;
        let mut expired = false;
        loop {
            while out.len() < wanted && output_bytes < self.output_budget {
                let Some((source, record)) = self.merge.pop() else {
                    break;
                };
                let bytes = record.buffered_bytes();
                self.buffered[source] -= bytes;
                self.buffered_total -= bytes;
                output_bytes += bytes;
                self.positions[source] = record.offset + 1;
                out.push(record);
                if self.merge.buffered(source) == 0 {
                    self.starved.push(source);
                }
            }
            let added = out.len() > before;
            if self.go_live_if_replayed()? && added {
                // The rows added so far end the replay: a call never hands over replay and
                // live rows together, so a caller that stops at `is_live` gets exactly the
                // replay.
                return Ok(());
            }
            if out.len() == wanted || output_bytes >= self.output_budget || self.is_done() {
                return Ok(());
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining.is_some_and(|r| r.is_zero()) {
                // Past the deadline, one round without waiting still moves what librdkafka
                // already holds, so that polling with a zero timeout makes progress.
                if expired {
                    return Ok(());
                }
                expired = true;
            }
            // Rows are ready for the caller: top up without waiting, and hand them over.
            let wait = if added || expired {
                Duration::ZERO
            } else {
                remaining.map_or(FILL_WAIT, |r| r.min(FILL_WAIT))
            };
            if !self.fill(wait)? && added && !self.merge.is_ready() {
                return Ok(());
            }
        }
    }

    /// Move messages from librdkafka's queues into the merge, waiting up to `wait` when
    /// nothing is there. Returns whether anything arrived (a message or a partition's end).
    fn fill(&mut self, wait: Duration) -> Result<bool> {
        self.read_new_partitions()?;
        self.fetcher.poll_events(&self.settings)?;
        if self.live {
            self.suspend_idle_partitions();
        }
        self.fetcher.begin_round();
        let mut progressed = self.fill_round()?;
        if !progressed && !wait.is_zero() {
            self.fetcher.wait(wait);
            progressed = self.fill_round()?;
        }
        if progressed {
            self.last_progress = Instant::now();
        } else {
            self.check_topics_exist()?;
        }
        if !progressed && !self.live && self.last_progress.elapsed() >= self.settings.timeout() {
            let source = (0..self.ranges.len())
                .find(|&source| self.merge.is_blocking(source))
                .unwrap_or(0);
            let range = &self.ranges[source];
            return Err(Error::Stalled {
                topic: range.topic.clone(),
                partition: range.partition,
                stop: range.stop,
                brokers: self.settings.brokers().to_owned(),
                timeout: self.settings.timeout(),
                last_problem: self.fetcher.last_problem().map(str::to_owned),
            });
        }
        Ok(progressed)
    }

    /// One batch from every partition that may be read: all of them while under the budget,
    /// only those the merge waits for when over it. Returns whether anything arrived.
    fn fill_round(&mut self) -> Result<bool> {
        self.round += 1;
        let mut took = false;
        if self.buffered_total >= self.buffer_budget {
            took = self.take_fetched()?;
            if let Some(progressed) = self.fill_starved()? {
                return Ok(progressed || took);
            }
        }
        let mut progressed = took;
        for source in 0..self.ranges.len() {
            if self.merge.is_finished(source) {
                continue;
            }
            let room = self.buffer_budget.saturating_sub(self.buffered_total);
            let max = if room > 0 {
                room / self.record_bytes.max(1) + 1
            } else if self.merge.is_blocking(source) {
                // Over budget, the partitions the merge waits for still get a few messages,
                // so the scan never deadlocks on its budget.
                BLOCKED_BATCH
            } else {
                continue;
            };
            self.offered[source] = self.round;
            progressed |= self.receive(source, max)?;
        }
        self.starved.clear();
        Ok(progressed)
    }

    /// Over budget, at most every [`FETCHED_LOOK_INTERVAL`]: take every message of each
    /// partition whose queue holds all that is left of its range.
    ///
    /// librdkafka fetches whole record batches, so a partition's queue can hold far more than
    /// its bound (one 1 MB batch of small messages). There each message costs its op and its
    /// share of the fetch response (see [`crate::fetch::LIBRDKAFKA_MESSAGE_OVERHEAD`]), which
    /// stays alive until the response's last message is taken; our copy costs a [`Record`]
    /// and the payloads the query reads. Taking them fetches nothing more, since the range
    /// is complete, so the scan holds less although our buffers go over their share. That
    /// matters where the merge needs every partition's first message and each partition is
    /// one record batch: the whole topic arrives before the first row. Measured on 200 such
    /// partitions of 2,000 100-byte messages at a 16 MiB budget, a count peaked 47 MiB above
    /// the baseline instead of 159. Returns whether anything was taken.
    fn take_fetched(&mut self) -> Result<bool> {
        if self.live || self.last_fetched_look.elapsed() < FETCHED_LOOK_INTERVAL {
            return Ok(false);
        }
        let mut took = false;
        for source in 0..self.ranges.len() {
            if self.merge.is_finished(source) {
                continue;
            }
            let left = self.ranges[source].stop - self.received[source];
            // Gaps (transaction markers, compaction) make the count fall short of `left`:
            // then the partition is read as before.
            let Ok(left) = usize::try_from(left) else {
                continue;
            };
            if left == 0 || self.fetcher.queued(source) < left {
                continue;
            }
            // Marked once: a poll that fills its batch marks the queue again itself.
            self.fetcher.mark_ready(source);
            while !self.merge.is_finished(source) && self.receive(source, MAX_BATCH)? {}
            took = true;
        }
        self.last_fetched_look = Instant::now();
        Ok(took)
    }

    /// Over budget: a few messages for each noted starved partition the merge waits for.
    /// `None` when none of them is waited for (a source can start waiting unnoticed, as
    /// when the scan goes live): then a full round finds them.
    fn fill_starved(&mut self) -> Result<Option<bool>> {
        let mut starved = std::mem::take(&mut self.starved);
        starved.retain(|&source| self.merge.is_blocking(source));
        starved.sort_unstable();
        starved.dedup();
        if starved.is_empty() {
            return Ok(None);
        }
        let mut progressed = false;
        for &source in &starved {
            self.offered[source] = self.round;
            progressed |= self.receive(source, BLOCKED_BATCH)?;
        }
        // Those still empty are noted again for the next round.
        starved.retain(|&source| self.merge.is_blocking(source));
        self.starved = starved;
        Ok(Some(progressed))
    }

    /// While nothing arrives, check every second that the unfinished partitions' topics
    /// still exist: a deleted topic is an error, not a wait until the timeout (or forever,
    /// once live).
    fn check_topics_exist(&mut self) -> Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_progress) < DELETION_CHECK_INTERVAL
            || now.duration_since(self.last_deletion_check) < DELETION_CHECK_INTERVAL
        {
            return Ok(());
        }
        self.last_deletion_check = now;
        let mut checked: Vec<&str> = Vec::new();
        for (source, range) in self.ranges.iter().enumerate() {
            if self.merge.is_finished(source) || checked.contains(&range.topic.as_str()) {
                continue;
            }
            checked.push(&range.topic);
            let timeout = DELETION_CHECK_TIMEOUT.min(self.settings.timeout());
            if self.fetcher.topic_deleted(&range.topic, timeout) {
                return Err(Error::TopicDeleted {
                    topic: range.topic.clone(),
                    brokers: self.settings.brokers().to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Follow mode, once per `metadata_refresh`: add the partitions the watch finds as new
    /// sources, each read from its log start (see the module docs). A failed or slow request
    /// is not an error, only a look to be made again at the next interval; each request may
    /// take up to [`METADATA_REFRESH_TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::Fetch`] when a found partition cannot be assigned.
    fn read_new_partitions(&mut self) -> Result<()> {
        if self.watch.is_empty() || self.last_refresh.elapsed() < self.options.metadata_refresh {
            return Ok(());
        }
        let added = self.find_new_partitions();
        // Counted from the end of the look: with brokers that do not answer, looks that time
        // out leave reading at least an interval between them.
        self.last_refresh = Instant::now();
        if added.is_empty() {
            return Ok(());
        }
        self.fetcher.add(&self.settings, &added)?;
        let now = Instant::now();
        for range in added {
            let source = self.merge.add_source();
            if self.live {
                // Waited for from its first message on, as if idle since the scan began.
                self.merge.suspend(source);
            } else {
                // Nothing to replay: its messages wait for the live merge.
                self.merge.finish(source);
            }
            self.positions.push(range.start);
            self.received.push(range.start);
            self.buffered.push(0);
            self.offered.push(self.round);
            self.last_heard.push(now);
            self.at_end.push(false);
            self.stash.push(VecDeque::new());
            self.ranges.push(range);
        }
        Ok(())
    }

    /// The watched partitions not read yet, with their log start as start and stop, in
    /// (topic, partition) order; none when a request fails (see `read_new_partitions`).
    fn find_new_partitions(&self) -> Vec<PartitionRange> {
        let timeout = METADATA_REFRESH_TIMEOUT.min(self.settings.timeout());
        let consumer = self.fetcher.consumer();
        let Ok(found) = self.watch.new_partitions(consumer, &self.ranges, timeout) else {
            return Vec::new();
        };
        if found.is_empty() {
            return Vec::new();
        }
        // One batched ListOffsets request per leader broker for all of them.
        let Ok(starts) = list_offsets(
            consumer,
            &self.settings,
            found
                .iter()
                .map(|(topic, partition)| (topic.as_str(), *partition, Offset::Beginning)),
            Instant::now() + timeout,
        ) else {
            return Vec::new();
        };
        found
            .into_iter()
            .zip(starts)
            // A log-start lookup always answers with an offset.
            .filter_map(|((topic, partition), start)| {
                start.map(|start| PartitionRange {
                    topic,
                    partition,
                    start,
                    stop: start,
                })
            })
            .collect()
    }

    /// Live: partitions silent for the idle timeout stop holding the merge back.
    fn suspend_idle_partitions(&mut self) {
        for source in 0..self.ranges.len() {
            if self.merge.is_blocking(source)
                && self.last_heard[source].elapsed() >= self.options.idle_timeout
            {
                self.merge.suspend(source);
            }
        }
    }

    /// Take one batch of up to `max` messages from one partition; returns whether something
    /// arrived.
    fn receive(&mut self, source: usize, max: usize) -> Result<bool> {
        let bounded = !self.live;
        let mut polled = std::mem::take(&mut self.polled);
        let taken = self.fetcher.poll(
            &self.settings,
            source,
            &self.ranges[source],
            bounded,
            max,
            &mut polled,
        );
        let (mut records, mut bytes) = (0, 0);
        for item in polled.drain(..) {
            match item {
                Polled::Done => {
                    self.at_end[source] = true;
                    self.merge.finish(source);
                }
                Polled::End => {
                    self.at_end[source] = true;
                    if self.live {
                        // The broker's high watermark says it has nothing more: once what it
                        // has buffered is returned, the merge does not wait for it.
                        self.merge.mark_at_end(source);
                    }
                }
                Polled::PastStop(record) => {
                    self.at_end[source] = false;
                    if self.options.follow {
                        self.charge(source, &record);
                        self.stash[source].push_back(record);
                    }
                    self.merge.finish(source);
                }
                Polled::Record(record) => {
                    self.at_end[source] = false;
                    if self.merge.is_finished(source) {
                        // Only a message re-delivered after a reconnect can come after the
                        // end; it was returned already.
                        continue;
                    }
                    self.received[source] = record.offset + 1;
                    let last = bounded && record.offset + 1 >= self.ranges[source].stop;
                    records += 1;
                    bytes += record.buffered_bytes();
                    self.accept(source, record);
                    if last {
                        self.merge.finish(source);
                    }
                }
            }
        }
        self.polled = polled;
        if let Some(average) = bytes.checked_div(records) {
            self.record_bytes = average;
        }
        let taken = taken?;
        if taken > 0 {
            self.last_heard[source] = Instant::now();
        }
        Ok(taken > 0)
    }

    /// Count a record against the budget.
    fn charge(&mut self, source: usize, record: &Record) {
        let bytes = record.buffered_bytes();
        self.buffered[source] += bytes;
        self.buffered_total += bytes;
    }

    /// Buffer a record in the merge and count it.
    fn accept(&mut self, source: usize, record: Record) {
        self.charge(source, &record);
        self.merge.push(source, record);
    }
}

fn new_merge(sources: usize, ordered: bool) -> OrderedMerge<Record, MergeKey> {
    let key: MergeKey = |record| (record.merge_timestamp(), record.offset);
    if ordered {
        OrderedMerge::new(sources, key)
    } else {
        OrderedMerge::unordered(sources, key)
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Resolve what a scan with these arguments would read, without reading it.
///
/// # Errors
/// As [`resolve_offsets`], and client creation errors.
pub fn plan_scan(
    settings: &ClientSettings,
    selection: &ScanSelection,
) -> Result<Vec<PartitionRange>> {
    Ok(plan_scan_with_notes(settings, selection)?
        .into_iter()
        .map(|planned| planned.range)
        .collect())
}

/// As [`plan_scan`], with a note on every range whose start `on_missing := 'skip'` moved.
///
/// # Errors
/// As [`resolve_plan`], and client creation errors.
pub fn plan_scan_with_notes(
    settings: &ClientSettings,
    selection: &ScanSelection,
) -> Result<Vec<PlannedRange>> {
    let budget = BudgetSplit::new(DEFAULT_MAX_BUFFER_BYTES, selection.topics.len());
    let consumer = create_consumer(settings, &budget)?;
    let planned = resolve_plan(&consumer, settings, selection, now_ms());
    close_consumer(&consumer);
    planned
}
