//! A bounded, ordered scan: resolve the offsets, fetch every partition from its start to its
//! stop, and release messages through the [`OrderedMerge`] under the memory budget.
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

/// How a scan reads, beyond what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// The memory budget in bytes: our buffers plus librdkafka's prefetch.
    pub max_buffer_bytes: usize,
    /// Which optional fields to copy.
    pub fields: Fields,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            fields: Fields::ALL,
        }
    }
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

/// A running bounded scan. Pull rows with [`Scan::next_records`].
pub struct Scan {
    settings: ClientSettings,
    ranges: Vec<PartitionRange>,
    fetcher: Fetcher,
    merge: OrderedMerge<Record, MergeKey>,
    /// Bytes buffered per source, and in all.
    buffered: Vec<usize>,
    buffered_total: usize,
    buffer_budget: usize,
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
        Self::start(settings, consumer, ranges, budget, options.fields)
    }

    fn start(
        settings: &ClientSettings,
        consumer: Arc<BaseConsumer>,
        ranges: Vec<PartitionRange>,
        budget: BudgetSplit,
        fields: Fields,
    ) -> Result<Self> {
        let fetcher = Fetcher::assign(consumer, settings, &ranges, fields)?;
        let mut merge: OrderedMerge<Record, MergeKey> = OrderedMerge::new(ranges.len(), |record| {
            (record.merge_timestamp(), record.offset)
        });
        for (source, range) in ranges.iter().enumerate() {
            if range.start >= range.stop {
                merge.finish(source);
            }
        }
        Ok(Self {
            settings: settings.clone(),
            buffered: vec![0; ranges.len()],
            ranges,
            fetcher,
            merge,
            buffered_total: 0,
            buffer_budget: budget.buffers,
            last_progress: Instant::now(),
        })
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

    /// Whether every message of the scan has been returned.
    pub fn is_done(&self) -> bool {
        self.merge.is_done()
    }

    /// Append up to `max` more rows, in order, to `out`. Returns once `out` holds `max` rows,
    /// once the scan is done, or once at least one row was added and no more is ready; so a
    /// call adds no row only when the scan is done.
    ///
    /// # Errors
    /// A fetch error, or [`Error::Stalled`] when a partition the merge waits for delivers
    /// nothing for the whole timeout.
    pub fn next_records(&mut self, max: usize, out: &mut Vec<Record>) -> Result<()> {
        let before = out.len();
        let wanted = before + max;
        loop {
            while out.len() < wanted {
                let Some((source, record)) = self.merge.pop() else {
                    break;
                };
                let bytes = record.buffered_bytes();
                self.buffered[source] -= bytes;
                self.buffered_total -= bytes;
                out.push(record);
            }
            let added = out.len() > before;
            if out.len() == wanted || self.merge.is_done() {
                return Ok(());
            }
            // Rows are ready for the caller: top up without waiting, and hand them over.
            let wait = if added { Duration::ZERO } else { FILL_WAIT };
            if !self.fill(wait)? && added && !self.merge.is_ready() {
                return Ok(());
            }
        }
    }

    /// Move messages from librdkafka's queues into the merge. Returns whether anything
    /// arrived (a message or a partition's end).
    fn fill(&mut self, wait: Duration) -> Result<bool> {
        self.fetcher.poll_events(&self.settings)?;
        let mut progressed = false;
        let mut first_blocking = None;
        for source in 0..self.ranges.len() {
            if self.merge.is_finished(source) {
                continue;
            }
            let blocking = self.merge.is_blocking(source);
            if blocking && first_blocking.is_none() {
                first_blocking = Some(source);
            }
            for _ in 0..FILL_BATCH {
                // Over budget, only the partitions the merge waits for are read.
                if !self.merge.is_blocking(source) && self.buffered_total >= self.buffer_budget {
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
            if let Some(source) = first_blocking {
                progressed = self.receive(source, wait)?;
                if !progressed {
                    self.check_position(source)?;
                    progressed = self.merge.is_finished(source);
                }
            }
        }
        if progressed {
            self.last_progress = Instant::now();
        } else if self.last_progress.elapsed() >= self.settings.timeout() {
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

    /// Poll one partition once; returns whether something arrived.
    fn receive(&mut self, source: usize, wait: Duration) -> Result<bool> {
        let range = &self.ranges[source];
        match self.fetcher.poll(&self.settings, source, range, wait)? {
            Polled::Nothing => Ok(false),
            Polled::Done => {
                self.merge.finish(source);
                Ok(true)
            }
            Polled::Record(record) => {
                let last = record.offset + 1 >= range.stop;
                let bytes = record.buffered_bytes();
                self.buffered[source] += bytes;
                self.buffered_total += bytes;
                self.merge.push(source, record);
                if last {
                    self.merge.finish(source);
                }
                Ok(true)
            }
        }
    }

    /// A partition whose last offsets were transaction markers or compacted away is done when
    /// the consumer's position reaches its stop, even if no further message or end-of-partition
    /// event comes.
    fn check_position(&mut self, source: usize) -> Result<()> {
        let range = &self.ranges[source];
        if self.fetcher.position(range)? >= range.stop {
            self.merge.finish(source);
        }
        Ok(())
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
    let budget = BudgetSplit::new(DEFAULT_MAX_BUFFER_BYTES, selection.topics.len());
    let consumer = create_consumer(settings, &budget)?;
    resolve_offsets(&consumer, settings, selection, now_ms())
}
