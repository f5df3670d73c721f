//! An ordered scan: resolve the offsets, fetch every partition from its start to its stop,
//! and release messages through the [`OrderedMerge`] under the memory budget.
//!
//! # Bounded and follow mode
//!
//! A bounded scan ends when every partition has reached its stop. In follow mode the replay
//! of `[start, stop)` comes first, in strict order, exactly as a bounded scan returns it;
//! messages at or past a partition's stop wait in librdkafka's queue until the whole replay
//! has been returned. Then the scan is *live* ([`Scan::is_live`]): every partition keeps
//! delivering what arrives, still merged by timestamp, except that a partition silent for the
//! idle timeout stops holding the others back, so live order is best effort.
//!
//! # Memory
//!
//! `max_buffer_bytes` bounds our buffers plus librdkafka's prefetch queues (see
//! [`BudgetSplit`]). A partition whose messages are not needed yet is simply not read while our
//! buffers are full: its librdkafka queue fills to its share and fetching it stops. The
//! partition the merge waits for is always read, so the scan never deadlocks on its budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use crate::error::{Error, Result};
use crate::fetch::{create_consumer, BudgetSplit, Fetcher, Polled};
use crate::merge::OrderedMerge;
use crate::record::{Fields, Record};
use crate::resolve::{resolve_offsets, PartitionRange};
use crate::selection::ScanSelection;
use crate::settings::ClientSettings;

/// The default memory budget: 256 MiB.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 256 * 1_048_576;
/// The smallest budget accepted: below this librdkafka's minimum fetch sizes dominate.
pub const MIN_MAX_BUFFER_BYTES: usize = 64 * 1024;
/// How many messages one partition may hand over per fill round before others get a turn.
const FILL_BATCH: usize = 1024;
/// How long a fill round waits for the partition the merge is blocked on.
const FILL_WAIT: Duration = Duration::from_millis(50);

/// The default idle timeout of follow mode: 1 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a live scan sleeps when no partition had anything.
const LIVE_IDLE_SLEEP: Duration = Duration::from_millis(5);

/// How a scan reads, beyond what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// The memory budget in bytes: our buffers plus librdkafka's prefetch.
    pub max_buffer_bytes: usize,
    /// Which optional fields to copy.
    pub fields: Fields,
    /// Keep reading after the stop offsets (follow mode).
    pub follow: bool,
    /// Follow mode, once live: how long a silent partition may hold the merge back.
    pub idle_timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            fields: Fields::ALL,
            follow: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
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
    /// [`MIN_MAX_BUFFER_BYTES`].
    pub fn validate(&self) -> Result<()> {
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
    /// Follow mode: per source, the first message past the stop, held until live.
    stash: Vec<Option<Record>>,
    /// Bytes buffered per source, and in all.
    buffered: Vec<usize>,
    buffered_total: usize,
    buffer_budget: usize,
    /// Per source: the offset after the last message returned.
    positions: Vec<i64>,
    /// Per source: left unread in the last fill round to stay within budget.
    throttled: Vec<bool>,
    /// Per source: when it last delivered something (follow mode's idle timeout).
    last_heard: Vec<Instant>,
    /// When a message (or the end of a partition) last arrived.
    last_progress: Instant,
}

impl Scan {
    /// Resolve `selection`'s offsets and start fetching.
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
        let ranges = resolve_offsets(&consumer, settings, selection, now_ms)?;
        let budget = BudgetSplit::new(options.max_buffer_bytes, ranges.len());
        let consumer = if budget == provisional {
            consumer
        } else {
            drop(consumer);
            create_consumer(settings, &budget)?
        };
        Self::start(settings, consumer, ranges, budget, options)
    }

    fn start(
        settings: &ClientSettings,
        consumer: Arc<BaseConsumer>,
        ranges: Vec<PartitionRange>,
        budget: BudgetSplit,
        options: ScanOptions,
    ) -> Result<Self> {
        let fetcher = Fetcher::assign(consumer, settings, &ranges, options.fields, options.follow)?;
        let mut merge = new_merge(ranges.len());
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
            throttled: vec![false; ranges.len()],
            last_heard: vec![now; ranges.len()],
            stash: (0..ranges.len()).map(|_| None).collect(),
            ranges,
            fetcher,
            merge,
            live: false,
            buffered_total: 0,
            buffer_budget: budget.buffers,
            last_progress: now,
        };
        scan.go_live_if_replayed();
        Ok(scan)
    }

    /// Follow mode: once the replay merge has released everything, switch to the live merge,
    /// seeded with the messages that revealed each partition's stop.
    fn go_live_if_replayed(&mut self) {
        if !self.options.follow || self.live || !self.merge.is_done() {
            return;
        }
        self.live = true;
        self.merge = new_merge(self.ranges.len());
        let now = Instant::now();
        self.last_heard.fill(now);
        for source in 0..self.ranges.len() {
            if let Some(record) = self.stash[source].take() {
                self.accept(source, record);
            }
        }
    }

    /// Whether the replay is complete: every message before the stop offsets has been
    /// returned. Only follow-mode scans become live; a bounded scan is then done instead.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Per partition, in (topic, partition) order: offsets, progress and buffering.
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
                buffered_messages: self.merge.buffered(source)
                    + usize::from(self.stash[source].is_some()),
                buffered_bytes: self.buffered[source],
                paused: self.throttled[source],
                live: self.live
                    || (self.merge.is_finished(source) && self.merge.buffered(source) == 0),
            })
            .collect()
    }

    /// The partitions this scan reads, with their resolved offsets, in (topic, partition)
    /// order. A record's `source` indexes this list.
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
    /// rows, once the scan is done, once at least one row was added and no more is ready, or
    /// when `deadline` passes (possibly with no row). Without a deadline a call adds no row
    /// only when the scan is done.
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
        let mut expired = false;
        loop {
            while out.len() < wanted {
                let Some((source, record)) = self.merge.pop() else {
                    break;
                };
                let bytes = record.buffered_bytes();
                self.buffered[source] -= bytes;
                self.buffered_total -= bytes;
                self.positions[source] = record.offset + 1;
                out.push(record);
            }
            self.go_live_if_replayed();
            let added = out.len() > before;
            if out.len() == wanted || self.is_done() {
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
        self.fetcher.poll_events(&self.settings)?;
        if self.live {
            self.suspend_idle_partitions();
        }
        let mut progressed = false;
        let mut first_blocking = None;
        for source in 0..self.ranges.len() {
            self.throttled[source] = false;
            if self.merge.is_finished(source) {
                continue;
            }
            if self.merge.is_blocking(source) && first_blocking.is_none() {
                first_blocking = Some(source);
            }
            for _ in 0..FILL_BATCH {
                // Over budget, only the partitions the merge waits for are read.
                if !self.merge.is_blocking(source) && self.buffered_total >= self.buffer_budget {
                    self.throttled[source] = true;
                    break;
                }
                if !self.receive(source, Duration::ZERO)? {
                    break;
                }
                progressed = true;
                if self.merge.is_finished(source) {
                    break;
                }
            }
        }
        if !progressed && !wait.is_zero() {
            match first_blocking {
                Some(source) => {
                    progressed = self.receive(source, wait)?;
                    if !progressed && !self.live {
                        self.check_position(source)?;
                        progressed = self.merge.is_finished(source);
                    }
                }
                // Live, and no partition is waited for: whichever speaks first is welcome.
                None => std::thread::sleep(wait.min(LIVE_IDLE_SLEEP)),
            }
        }
        if progressed {
            self.last_progress = Instant::now();
        } else if !self.live && self.last_progress.elapsed() >= self.settings.timeout() {
            let source = first_blocking.unwrap_or(0);
            let range = &self.ranges[source];
            return Err(Error::Stalled {
                topic: range.topic.clone(),
                partition: range.partition,
                stop: range.stop,
                brokers: self.settings.brokers().to_owned(),
                timeout: self.settings.timeout(),
            });
        }
        Ok(progressed)
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

    /// Poll one partition once; returns whether something arrived.
    fn receive(&mut self, source: usize, wait: Duration) -> Result<bool> {
        let range = &self.ranges[source];
        let bounded = !self.live;
        match self
            .fetcher
            .poll(&self.settings, source, range, wait, bounded)?
        {
            Polled::Nothing => Ok(false),
            Polled::Done => {
                self.merge.finish(source);
                Ok(true)
            }
            Polled::PastStop(record) => {
                if self.options.follow {
                    self.stash[source] = Some(record);
                }
                self.merge.finish(source);
                Ok(true)
            }
            Polled::Record(record) => {
                let last = bounded && record.offset + 1 >= range.stop;
                self.accept(source, record);
                if last {
                    self.merge.finish(source);
                }
                Ok(true)
            }
        }
    }

    /// Buffer a record in the merge and count it.
    fn accept(&mut self, source: usize, record: Record) {
        let bytes = record.buffered_bytes();
        self.buffered[source] += bytes;
        self.buffered_total += bytes;
        self.last_heard[source] = Instant::now();
        self.merge.push(source, record);
    }

    /// A partition whose last offsets were transaction markers or compacted away is done when
    /// the consumer's position reaches its stop, even if no further message or end-of-partition
    /// event comes.
    fn check_position(&mut self, source: usize) -> Result<()> {
        let range = &self.ranges[source];
        if self.fetcher.position(&self.settings, range)? >= range.stop {
            self.merge.finish(source);
        }
        Ok(())
    }
}

fn new_merge(sources: usize) -> OrderedMerge<Record, MergeKey> {
    OrderedMerge::new(sources, |record| (record.merge_timestamp(), record.offset))
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
    let budget = BudgetSplit::new(DEFAULT_MAX_BUFFER_BYTES, selection.topics.len());
    let consumer = create_consumer(settings, &budget)?;
    resolve_offsets(&consumer, settings, selection, now_ms())
}
