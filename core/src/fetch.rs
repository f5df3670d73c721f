//! Fetching: one librdkafka consumer, assigned (never subscribed) to every partition of a
//! scan at its resolved start offset, with one queue per partition so that each partition can
//! be read — or left alone — on its own.
//!
//! Leaving a partition's queue unpolled is how a partition that runs ahead is held back: its
//! queue fills up to its share of the prefetch budget (`queued.max.messages.kbytes`) and
//! librdkafka stops fetching it until we read again. Nothing is lost or fetched twice, unlike
//! `pause()`, which drops prefetched data.

use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::chunk::{ChunkPool, ChunkWriter};
use crate::error::{kafka_reason, Error, Result};
use crate::message::KafkaMessage;
use crate::record::{Fields, Payloads, Record, TimestampType};
use crate::resolve::PartitionRange;
use crate::settings::ClientSettings;

/// librdkafka's upper limit for `queued.max.messages.kbytes`.
const MAX_QUEUE_KBYTES: usize = 2_097_151;
/// librdkafka's limits for `queued.min.messages`; below 100 a queue refills too often to
/// keep up.
const MIN_QUEUED_MESSAGES: usize = 100;
const MAX_QUEUED_MESSAGES: usize = 10_000_000;
/// librdkafka's lower limit for `message.max.bytes` (and so for `fetch.max.bytes`).
const MIN_FETCH_BYTES: usize = 1_000;
/// Kafka's usual per-partition fetch size; more buys nothing for a single partition.
const MAX_PARTITION_FETCH_BYTES: usize = 1_048_576;
/// The largest record batch librdkafka-based producers write by default (`batch.size`).
const FULL_BATCH_BYTES: usize = 1_048_576;
/// Bounds of a fetch response (`fetch.max.bytes`).
const MIN_RESPONSE_BYTES: usize = 64 * 1024;
const MAX_RESPONSE_BYTES: usize = 16 * 1_048_576;
/// The response size that keeps what slow partitions pin small (see [`BudgetSplit::new`]):
/// 4 MiB responses let an ordered scan of skewed partitions at 256 MiB peak at 325 MB, 1 MiB
/// ones at 171 MB, and were no slower.
const PINNING_RESPONSE_BYTES: usize = 1_048_576;
/// With many partitions a response is shared by all of them: it grows to give each about
/// this much (the Java producer's default `batch.size`), up to a 16th of the budget. Each
/// fetch names every partition, and the broker answers for every one of them: over 1,000
/// partitions, 4 MiB responses took 15 % longer than 16 MiB ones.
const RESPONSE_BYTES_PER_PARTITION: usize = 16 * 1024;

/// How the memory budget is split between librdkafka's prefetch queues and our buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSplit {
    /// Bytes our per-partition buffers may hold together.
    pub buffers: usize,
    /// `queued.max.messages.kbytes`: each partition's prefetch queue, in payload bytes.
    pub queue_kbytes: usize,
    /// `queued.min.messages`: each partition's prefetch queue, in messages. librdkafka counts
    /// only payload bytes against `queue_kbytes`, but holds a few hundred bytes more per
    /// message; with small messages that dominated (a 4 MiB queue of 100-byte messages held
    /// 15 MB), so the count is bounded too.
    pub queue_messages: usize,
    /// `max.partition.fetch.bytes`.
    pub partition_fetch_bytes: usize,
    /// `fetch.max.bytes` (and `message.max.bytes`, which librdkafka requires not to exceed it).
    pub fetch_bytes: usize,
    /// The most bytes (as records are charged) one call of [`crate::Scan::next_records`]
    /// returns: a caller's output batch, built from those records, is in the budget too.
    pub output_bytes: usize,
    /// The size of the chunks records are copied into (a larger message gets a chunk of its
    /// own; see the `chunk` module). A chunk is freed with its last record, and each partition
    /// has one being filled, so each may keep up to two chunks alive beyond what its buffered
    /// records are charged: a 16th of the buffers' per-partition share, between 4 and 64 KiB.
    pub chunk_bytes: usize,
}

/// Bounds of [`BudgetSplit::chunk_bytes`]: a chunk is one allocation for many small records,
/// and stays below glibc's default mmap threshold (128 KiB).
const MIN_CHUNK_BYTES: usize = 4 * 1024;
const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// The most bytes one output batch may hold: well below the 2 GiB that a column with Arrow's
/// 32-bit offsets can address.
const MAX_OUTPUT_BYTES: usize = 1 << 30;

impl BudgetSplit {
    /// Split `max_buffer_bytes` for `partitions` partitions: a quarter for our buffers, an
    /// eighth (up to a half, to hold one record batch per partition) for librdkafka's
    /// per-partition queues (in payload bytes and, for small messages, in messages), fetch
    /// responses of a 64th (at most 1 MiB; many partitions share up to a 16th), and a 32nd
    /// for the records one call returns. Those are held up to three times: as records while
    /// the caller builds its output batch, in that batch, and in the caller's previous batch,
    /// which a loop over batches still holds while it asks for the next. The rest is
    /// headroom for what cannot be counted exactly.
    ///
    /// A message in librdkafka's queue keeps its whole fetch response alive until it is
    /// taken (our buffers hold copies), and a response holds data of every partition: a slow
    /// partition's few queued messages pin responses full of the fast partitions' (already
    /// returned) data. Small responses keep that small; the headroom covers it and the
    /// allocator's overhead.
    pub fn new(max_buffer_bytes: usize, partitions: usize) -> Self {
        let partitions = partitions.max(1);
        // A queue smaller than one record batch (librdkafka producers write up to 1 MB)
        // slows fetching to a crawl, so queues get at least that much while the budget allows
        // (up to half of it).
        let queue = (max_buffer_bytes / 8 / partitions)
            .max(FULL_BATCH_BYTES.min(max_buffer_bytes / 2 / partitions));
        let shared = (partitions * RESPONSE_BYTES_PER_PARTITION).min(max_buffer_bytes / 16);
        let fetch_bytes = (max_buffer_bytes / 64)
            .min(PINNING_RESPONSE_BYTES)
            .max(shared)
            .clamp(MIN_RESPONSE_BYTES, MAX_RESPONSE_BYTES);
        Self {
            buffers: max_buffer_bytes / 4,
            queue_kbytes: (queue / 1024).clamp(1, MAX_QUEUE_KBYTES),
            queue_messages: (queue / LIBRDKAFKA_MESSAGE_OVERHEAD)
                .clamp(MIN_QUEUED_MESSAGES, MAX_QUEUED_MESSAGES),
            // Not a share of the response per partition: a partition fetch smaller than the
            // producer's record batches makes the broker send a truncated batch that
            // librdkafka discards and asks again for, growing its size step by step (a
            // 1,000-partition scan ran 5x slower). The response (`fetch.max.bytes`) bounds
            // what one fetch brings for all partitions together.
            partition_fetch_bytes: fetch_bytes.clamp(MIN_FETCH_BYTES, MAX_PARTITION_FETCH_BYTES),
            fetch_bytes,
            output_bytes: (max_buffer_bytes / 32).min(MAX_OUTPUT_BYTES),
            chunk_bytes: (max_buffer_bytes / 4 / partitions / 16)
                .clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES),
        }
    }
}

/// What polling one partition gave.
pub(crate) enum Polled {
    /// A message inside the partition's range (or any message, when no stop applies).
    Record(Record),
    /// A message at or past the stop offset: the range is complete. Follow mode keeps these
    /// as the first live messages.
    PastStop(Record),
    /// The partition reached its stop offset without a message to show for it.
    Done,
    /// The fetcher reached the end of the partition's log, the high watermark (or, under
    /// `read_committed`, the last stable offset) of its last fetch, with every message before
    /// it delivered. librdkafka reports each end once, until more arrives.
    End,
}

/// What librdkafka holds per message in its prefetch queues beyond its key and value: the op
/// it allocates for each message (235 bytes with librdkafka 2.12 on x86-64, measured with
/// heaptrack) and the record's framing in the fetch response the payloads point into, rounded
/// up.
pub(crate) const LIBRDKAFKA_MESSAGE_OVERHEAD: usize = 288;

/// How many messages one batch call may take from a partition queue.
pub(crate) const MAX_BATCH: usize = 4096;

/// Wakes a scan waiting for data: librdkafka calls [`Wakeup::notify`] from its own threads
/// when any partition queue goes from empty to non-empty.
#[derive(Default)]
pub(crate) struct Wakeup {
    arrived: Mutex<bool>,
    condition: Condvar,
}

impl Wakeup {
    /// Forget earlier arrivals. Called before looking at the queues, so that anything arriving
    /// after the look wakes the next [`Wakeup::wait`].
    fn reset(&self) {
        *self.arrived.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Wait until a queue went non-empty since the last reset, or `timeout` passed.
    fn wait(&self, timeout: Duration) {
        let arrived = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        let _unused = self
            .condition
            .wait_timeout_while(arrived, timeout, |arrived| !*arrived)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn notify(&self) {
        *self.arrived.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.condition.notify_all();
    }
}

/// What one partition queue's callback tells: the queue may hold something, and the scan's
/// shared wakeup.
struct QueueSignal {
    /// Set by librdkafka's callback when the queue goes from empty to non-empty, and by
    /// [`Fetcher::poll`] when it left something behind; cleared by `poll` before it reads.
    /// A queue without it is empty: polling it is skipped, which matters with many
    /// partitions (a round over 1,000 empty queues cost more than the messages it found).
    ready: AtomicBool,
    wakeup: Arc<Wakeup>,
}

/// librdkafka's "queue became non-empty" callback. It runs on a librdkafka thread and must not
/// call into librdkafka.
unsafe extern "C" fn queue_nonempty(_client: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `QueueSignal` of a `PartitionQueue`, which disables the
    // callback before it drops the signal.
    let signal = unsafe { &*opaque.cast::<QueueSignal>() };
    signal.ready.store(true, Ordering::Release);
    signal.wakeup.notify();
}

/// One partition's queue, split off the consumer's main queue so that the partition can be
/// read, or left alone, on its own.
struct PartitionQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Boxed: librdkafka holds its address.
    signal: Box<QueueSignal>,
}

impl PartitionQueue {
    fn split(
        consumer: &BaseConsumer,
        topic: &str,
        partition: i32,
        wakeup: &Arc<Wakeup>,
    ) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client is live; the returned queue is ours to destroy.
        let queue = NonNull::new(unsafe {
            rdsys::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        })?;
        // Stop forwarding the partition's messages to the main queue.
        // SAFETY: `queue` is live.
        unsafe { rdsys::rd_kafka_queue_forward(queue.as_ptr(), std::ptr::null_mut()) };
        // Ready at first: whatever was forwarded before the split is there already.
        let signal = Box::new(QueueSignal {
            ready: AtomicBool::new(true),
            wakeup: Arc::clone(wakeup),
        });
        // SAFETY: the signal lives until `drop`, which disables the callback first.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(queue_nonempty),
                std::ptr::from_ref::<QueueSignal>(&signal)
                    .cast_mut()
                    .cast::<c_void>(),
            );
        }
        Some(Self { queue, signal })
    }
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: owned since `split`, destroyed once, before the consumer and the wakeup
        // (see `Fetcher`); the callback is disabled first.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// The consumer and its per-partition queues.
pub(crate) struct Fetcher {
    /// One queue per source; `None` for partitions with nothing to read. Declared before the
    /// consumer so that the queues are destroyed first.
    queues: Vec<Option<PartitionQueue>>,
    consumer: Arc<BaseConsumer>,
    wakeup: Arc<Wakeup>,
    fields: Fields,
    /// The last error librdkafka reported and recovers from by itself (broker down, leader
    /// moving), for the message of a scan that stalls.
    last_problem: Option<String>,
    /// The buffers records are copied into (see [`BudgetSplit::chunk_bytes`]).
    pool: Arc<ChunkPool>,
    /// Per source, the chunk its next records are copied into.
    writers: Vec<Option<ChunkWriter>>,
    /// Scratch space for the batch call; empty between calls.
    slots: Vec<*mut rdsys::rd_kafka_message_t>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.queues.clear();
        close_consumer(&self.consumer);
    }
}

// SAFETY: the queue handles and the (always empty between calls) scratch pointers may move
// between threads; librdkafka's queues are thread-safe, and a `Fetcher` is used by one thread
// at a time (`&mut self` for every read).
unsafe impl Send for Fetcher {}

/// Create the consumer a scan reads with. It is configured for reading only: partitions are
/// assigned, offsets are never committed or stored, topics never created, and a start offset
/// that retention already removed is an error rather than a silent jump.
pub(crate) fn create_consumer(
    settings: &ClientSettings,
    budget: &BudgetSplit,
) -> Result<Arc<BaseConsumer>> {
    let mut config = settings.client_config();
    set_default(&mut config, settings, "group.id", &throwaway_group_id());
    set_default(
        &mut config,
        settings,
        "queued.max.messages.kbytes",
        &budget.queue_kbytes.to_string(),
    );
    set_default(
        &mut config,
        settings,
        "queued.min.messages",
        &budget.queue_messages.to_string(),
    );
    set_default(
        &mut config,
        settings,
        "max.partition.fetch.bytes",
        &budget.partition_fetch_bytes.to_string(),
    );
    set_default(
        &mut config,
        settings,
        "fetch.max.bytes",
        &budget.fetch_bytes.to_string(),
    );
    // librdkafka refuses a `fetch.max.bytes` below `message.max.bytes`: derived from the
    // response size in force, the user's if they set one.
    let fetch_bytes = settings
        .properties()
        .get("fetch.max.bytes")
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(budget.fetch_bytes);
    set_default(
        &mut config,
        settings,
        "message.max.bytes",
        &fetch_bytes.clamp(MIN_FETCH_BYTES, 1_000_000).to_string(),
    );
    // A full queue is re-checked after this long; librdkafka's 1 s default idles a scan that
    // is draining a small budget.
    set_default(&mut config, settings, "fetch.queue.backoff.ms", "10");
    // A fetch that finds no data waits at the broker for this long, and holds up the next one
    // for every partition of that broker. Partitions fetched to their end (a bounded scan does
    // not need more) make every fetch such a fetch while a slow partition still has data to
    // come: with librdkafka's 500 ms default, a skewed scan spent most of its time waiting.
    set_default(&mut config, settings, "fetch.wait.max.ms", "20");
    // librdkafka backs off up to 10 s between reconnects; a restarted broker would then sit
    // unused for seconds while the scan waits for it.
    set_default(&mut config, settings, "reconnect.backoff.max.ms", "1000");
    // "Reached the end" must be reported even when the last offsets were transaction markers.
    config.set("enable.partition.eof", "true");
    config.set("auto.offset.reset", "error");
    config
        .create()
        .map(Arc::new)
        .map_err(|error| Error::ClientCreation {
            message: settings.redact(&kafka_reason(&error)),
        })
}

/// How long closing a consumer may take before it is left to its destructor.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Close `consumer` promptly. It never joined a group, so closing has nothing to wait for, but
/// rdkafka's destructor polls in 100 ms steps until librdkafka says closed: 100 ms added to
/// every scan. Closing first, in 1 ms steps, makes the destructor's close a no-op.
pub(crate) fn close_consumer(consumer: &BaseConsumer) {
    if consumer.close_queue().is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + CLOSE_LIMIT;
    while !consumer.closed() && std::time::Instant::now() < deadline {
        let _event = consumer.poll(Duration::from_millis(1));
    }
}

/// Set `key` unless the user configured it.
fn set_default(config: &mut ClientConfig, settings: &ClientSettings, key: &str, value: &str) {
    if !settings.properties().contains_key(key) {
        config.set(key, value);
    }
}

/// librdkafka wants a `group.id` even for assigned partitions; this one is never joined and
/// nothing is ever committed under it.
fn throwaway_group_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("kafkars-{}-{nanos}", std::process::id())
}

impl Fetcher {
    /// Assign the partitions of `ranges` at their start offsets and split off their queues:
    /// those with something to read, or all of them when `follow` (to read what comes later).
    pub(crate) fn assign(
        consumer: Arc<BaseConsumer>,
        settings: &ClientSettings,
        ranges: &[PartitionRange],
        fields: Fields,
        follow: bool,
        budget: &BudgetSplit,
    ) -> Result<Self> {
        let read = |range: &PartitionRange| follow || range.start < range.stop;
        // Split the queues first: once assigned, librdkafka starts fetching and forwards what
        // it fetches to the consumer's main queue until a partition's queue is split off, so
        // a split after `assign` could lose the first messages to a fast broker. A queue
        // split (forwarded by the application) keeps its messages from then on.
        let wakeup = Arc::new(Wakeup::default());
        let queues = ranges
            .iter()
            .map(|range| {
                if !read(range) {
                    return Ok(None);
                }
                split_queue(&consumer, settings, range, &wakeup).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut assignment = TopicPartitionList::with_capacity(ranges.len());
        for range in ranges.iter().filter(|r| read(r)) {
            assignment
                .add_partition_offset(&range.topic, range.partition, Offset::Offset(range.start))
                .map_err(|error| fetch_error(settings, range, &error))?;
        }
        consumer.assign(&assignment).map_err(|error| Error::Fetch {
            topic: ranges.first().map(|r| r.topic.clone()).unwrap_or_default(),
            partition: None,
            brokers: settings.brokers().to_owned(),
            reason: settings.redact(&kafka_reason(&error)),
        })?;
        Ok(Self {
            queues,
            consumer,
            wakeup,
            fields,
            last_problem: None,
            // Free buffers kept for reuse: up to an eighth of our buffers' share.
            pool: ChunkPool::new(budget.chunk_bytes, budget.buffers / 8),
            writers: ranges.iter().map(|_| None).collect(),
            slots: Vec::with_capacity(MAX_BATCH),
        })
    }

    /// Add the partitions of `ranges`, which must not be assigned yet, as sources numbered
    /// from the current count on, each read from its start (follow mode: partitions created
    /// while the scan runs). They are added to the assignment (librdkafka's
    /// `incremental_assign`), which leaves the partitions already read, and what their queues
    /// hold, untouched; `assign` would restart them all.
    ///
    /// The prefetch budget per partition (`queued.max.messages.kbytes`) was fixed when the
    /// consumer was created, for the partitions known then: each added partition may queue as
    /// much as the others.
    ///
    /// # Errors
    /// [`Error::Fetch`] naming the partition when its queue cannot be split off or it cannot
    /// be assigned; nothing is added then.
    pub(crate) fn add(
        &mut self,
        settings: &ClientSettings,
        ranges: &[PartitionRange],
    ) -> Result<()> {
        let Some(first) = ranges.first() else {
            return Ok(());
        };
        // Queues first, for the reason given in `assign`.
        let queues = ranges
            .iter()
            .map(|range| split_queue(&self.consumer, settings, range, &self.wakeup).map(Some))
            .collect::<Result<Vec<_>>>()?;
        let mut assignment = TopicPartitionList::with_capacity(ranges.len());
        for range in ranges {
            assignment
                .add_partition_offset(&range.topic, range.partition, Offset::Offset(range.start))
                .map_err(|error| fetch_error(settings, range, &error))?;
        }
        self.consumer
            .incremental_assign(&assignment)
            .map_err(|error| Error::Fetch {
                topic: first.topic.clone(),
                partition: (ranges.len() == 1).then_some(first.partition),
                brokers: settings.brokers().to_owned(),
                reason: settings.redact(&kafka_reason(&error)),
            })?;
        self.queues.extend(queues);
        self.writers.extend(ranges.iter().map(|_| None));
        Ok(())
    }

    /// The consumer, for the metadata requests of a scan.
    pub(crate) fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }

    /// Serve the consumer's main queue, where errors that concern no single partition
    /// arrive. Returns the first fatal error.
    pub(crate) fn poll_events(&mut self, settings: &ClientSettings) -> Result<()> {
        while let Some(event) = self.consumer.poll(Duration::ZERO) {
            if let Err(error) = event {
                let reason = settings.redact(&kafka_reason(&error));
                if !is_transient(&error) {
                    return Err(Error::Fetch {
                        topic: String::new(),
                        partition: None,
                        brokers: settings.brokers().to_owned(),
                        reason,
                    });
                }
                self.last_problem = Some(reason);
            }
        }
        Ok(())
    }

    /// The last error librdkafka reported and is recovering from, if any.
    pub(crate) fn last_problem(&self) -> Option<&str> {
        self.last_problem.as_deref()
    }

    /// Whether the cluster says `topic` no longer exists. A failed request (brokers down) is
    /// not an answer: `false`.
    ///
    /// librdkafka 2.12's batch call never reports a deleted topic, so a scan that stops
    /// making progress asks.
    pub(crate) fn topic_deleted(&self, topic: &str, timeout: Duration) -> bool {
        match self.consumer.fetch_metadata(Some(topic), timeout) {
            Err(_) => false,
            Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                None => true,
                Some(entry) => matches!(
                    entry.error().map(RDKafkaErrorCode::from),
                    Some(
                        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                    )
                ),
            },
        }
    }

    /// How many events (messages, and the end or error events among them) partition
    /// `source`'s queue holds now; 0 for a partition with nothing to read.
    pub(crate) fn queued(&self, source: usize) -> usize {
        self.queues[source].as_ref().map_or(0, |queue| {
            // SAFETY: the queue handle lives as long as `self`; the call only reads a count
            // under the queue's lock.
            unsafe { rdsys::rd_kafka_queue_length(queue.queue.as_ptr()) }
        })
    }

    /// Have the next [`Fetcher::poll`] of `source` look at its queue even if no arrival was
    /// announced since the last one.
    pub(crate) fn mark_ready(&self, source: usize) {
        if let Some(queue) = &self.queues[source] {
            queue.signal.ready.store(true, Ordering::Release);
        }
    }

    /// Start a round of polls: arrivals from now on end the next [`Fetcher::wait`] early.
    pub(crate) fn begin_round(&self) {
        self.wakeup.reset();
    }

    /// Wait until some partition queue received something since [`Fetcher::begin_round`], or
    /// `timeout` passed.
    pub(crate) fn wait(&self, timeout: Duration) {
        self.wakeup.wait(timeout);
    }

    /// Take up to `max` messages from partition `source`'s queue into `sink`, without
    /// waiting. With `bounded`, messages are checked against the range's stop; without (follow
    /// mode, once live), every message is simply delivered. Returns how many messages (and end
    /// events) were taken.
    ///
    /// Messages come out of librdkafka in batches (`rd_kafka_consume_batch_queue`): one lock
    /// and one clock read per batch instead of per message.
    pub(crate) fn poll(
        &mut self,
        settings: &ClientSettings,
        source: usize,
        range: &PartitionRange,
        bounded: bool,
        max: usize,
        sink: &mut Vec<Polled>,
    ) -> Result<usize> {
        let Some(queue) = &self.queues[source] else {
            sink.push(Polled::Done);
            return Ok(1);
        };
        // Cleared before reading: an arrival from now on sets it again.
        if !queue.signal.ready.swap(false, Ordering::AcqRel) {
            return Ok(0);
        }
        let max = max.clamp(1, MAX_BATCH);
        self.slots.clear();
        // SAFETY: `slots` has room for `max` pointers; librdkafka writes that many at most
        // and hands each message over to us. With a zero timeout the call takes what is
        // there and returns.
        let taken = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                queue.queue.as_ptr(),
                0,
                self.slots.as_mut_ptr(),
                max,
            )
        };
        let taken = usize::try_from(taken).unwrap_or(0);
        if taken == max {
            // Possibly more there, which no callback will announce.
            queue.signal.ready.store(true, Ordering::Release);
        }
        // SAFETY: librdkafka initialised the first `taken` slots.
        unsafe { self.slots.set_len(taken) };
        // Each message is copied and destroyed at once, while it is in the cache and on the
        // thread that took it (see `crate::chunk`).
        let mut failure = None;
        let index = u32::try_from(source).unwrap_or(u32::MAX);
        for slot in 0..taken {
            let Some(message) = NonNull::new(self.slots[slot]) else {
                continue;
            };
            // SAFETY: each message is handed over to us once; `KafkaMessage` destroys it,
            // here, while the consumer lives.
            let message = unsafe { KafkaMessage::new(message, self.fields) };
            match classify(&message) {
                Fetched::Record(meta) => {
                    let (chunk, payloads) = if message.has_payloads() {
                        let slot = &mut self.writers[source];
                        let mut writer = slot.get_or_insert_with(|| {
                            ChunkWriter::open(&self.pool, message.copy_len())
                        });
                        // Try the open chunk first: measuring the message beforehand would
                        // read its headers twice. When it does not fit, what was written of
                        // it stays unreferenced at the chunk's end.
                        let mut copied = message.copy_into(writer);
                        if copied.is_none() {
                            writer = slot.insert(ChunkWriter::open(&self.pool, message.copy_len()));
                            copied = message.copy_into(writer);
                        }
                        let Some(payloads) = copied else {
                            // Only past the 4 GiB a chunk's spans address.
                            let len = message.copy_len();
                            failure.get_or_insert_with(|| Error::Fetch {
                                topic: range.topic.clone(),
                                partition: Some(range.partition),
                                brokers: settings.brokers().to_owned(),
                                reason: format!(
                                    "the message at offset {} has {len} bytes of key, value \
                                     and headers, more than kafkars can hold (4 GiB)",
                                    meta.offset
                                ),
                            });
                            continue;
                        };
                        (Some(writer.chunk()), payloads)
                    } else {
                        // Nothing to copy: no chunk is opened for the partition.
                        (None, Payloads::default())
                    };
                    let record = Record::in_chunk(
                        index,
                        meta.offset,
                        meta.timestamp_ms,
                        meta.timestamp_type,
                        chunk,
                        payloads,
                    );
                    sink.push(if bounded && meta.offset >= range.stop {
                        Polled::PastStop(record)
                    } else {
                        Polled::Record(record)
                    });
                }
                // The end-of-partition event carries the offset the fetcher reached. Not the
                // consumer's position: librdkafka 2.12's batch call moves that one past the
                // event's offset, which could end a partition one message early.
                Fetched::End(offset) if bounded && offset >= range.stop => {
                    sink.push(Polled::Done);
                }
                Fetched::End(_) => sink.push(Polled::End),
                Fetched::Failed(code, reason) => {
                    let reason = settings.redact(&reason);
                    if is_transient_code(code) {
                        self.last_problem = Some(reason);
                    } else if failure.is_none() {
                        failure = Some(Error::Fetch {
                            topic: range.topic.clone(),
                            partition: Some(range.partition),
                            brokers: settings.brokers().to_owned(),
                            reason,
                        });
                    }
                }
            }
            // The message is destroyed here.
        }
        self.slots.clear();
        match failure {
            Some(error) => Err(error),
            None => Ok(taken),
        }
    }
}

/// Split off the queue of `range`'s partition, waking `wakeup` when it receives something.
fn split_queue(
    consumer: &BaseConsumer,
    settings: &ClientSettings,
    range: &PartitionRange,
    wakeup: &Arc<Wakeup>,
) -> Result<PartitionQueue> {
    PartitionQueue::split(consumer, &range.topic, range.partition, wakeup).ok_or_else(|| {
        Error::Fetch {
            topic: range.topic.clone(),
            partition: Some(range.partition),
            brokers: settings.brokers().to_owned(),
            reason: "librdkafka could not open the partition's queue".into(),
        }
    })
}

/// Kafka's timestamp of a record that has none (`RecordBatch.NO_TIMESTAMP` in the Kafka
/// protocol's record batch format).
const NO_TIMESTAMP: i64 = -1;

/// What a record carries besides its payloads.
#[derive(Debug, Clone, Copy)]
struct RecordMeta {
    offset: i64,
    timestamp_ms: Option<i64>,
    timestamp_type: Option<TimestampType>,
}

/// A message out of a partition queue: a record, the end of the partition, or an error.
enum Fetched {
    Record(RecordMeta),
    End(i64),
    Failed(RDKafkaErrorCode, String),
}

fn classify(message: &KafkaMessage) -> Fetched {
    let raw = message.raw();
    let offset = raw.offset;
    match raw.err {
        rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {
            let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
            // SAFETY: the message is live.
            let timestamp = unsafe { rdsys::rd_kafka_message_timestamp(raw, &mut kind) };
            let (timestamp_ms, timestamp_type) = match kind {
                // -1 is Kafka's "no timestamp" (`RecordBatch.NO_TIMESTAMP`): a producer that
                // set none writes it into a v2 batch, and librdkafka reports it as a
                // CreateTime of -1. Shown as a time it would read 1969-12-31 23:59:59.999.
                _ if timestamp == NO_TIMESTAMP => (None, None),
                rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
                    (Some(timestamp), Some(TimestampType::CreateTime))
                }
                rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                    (Some(timestamp), Some(TimestampType::LogAppendTime))
                }
                _ => (None, None),
            };
            Fetched::Record(RecordMeta {
                offset,
                timestamp_ms,
                timestamp_type,
            })
        }
        rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => Fetched::End(offset),
        code => {
            let code = RDKafkaErrorCode::from(code);
            // For error messages, the payload is librdkafka's description.
            let reason = match message.payload() {
                Some(text) if !text.is_empty() => {
                    format!("{code} ({})", String::from_utf8_lossy(text))
                }
                _ => code.to_string(),
            };
            Fetched::Failed(code, reason)
        }
    }
}

/// Errors librdkafka recovers from by itself (reconnecting, re-fetching metadata): a scan
/// waits through them, bounded by its no-progress timeout.
fn is_transient(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(is_transient_code)
}

fn is_transient_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
    )
}

fn fetch_error(settings: &ClientSettings, range: &PartitionRange, error: &KafkaError) -> Error {
    Error::Fetch {
        topic: range.topic.clone(),
        partition: Some(range.partition),
        brokers: settings.brokers().to_owned(),
        reason: settings.redact(&kafka_reason(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A user's `fetch.max.bytes` below our `message.max.bytes` default is accepted: the
    // default follows it (librdkafka refuses fetch.max.bytes < message.max.bytes).
    #[test]
    fn test_small_user_fetch_max_bytes_is_accepted() {
        let settings = ClientSettings::builder()
            .brokers("127.0.0.1:1")
            .property("fetch.max.bytes", "524288")
            .build()
            .unwrap();
        let budget = BudgetSplit::new(256 * 1_048_576, 8);
        let consumer = create_consumer(&settings, &budget).unwrap();
        close_consumer(&consumer);
    }

    #[test]
    fn test_budget_split_bounds() {
        let split = BudgetSplit::new(256 * 1_048_576, 8);
        assert_eq!(split.buffers, 64 * 1_048_576);
        assert_eq!(split.queue_kbytes, 4 * 1024);
        assert_eq!(split.fetch_bytes, 1_048_576);
        // Many partitions share a larger response.
        assert_eq!(
            BudgetSplit::new(256 * 1_048_576, 1000).fetch_bytes,
            16_384_000
        );
        // A small budget bounds the shared response to a 16th of it.
        assert_eq!(
            BudgetSplit::new(16 * 1_048_576, 1000).fetch_bytes,
            1_048_576
        );
        assert_eq!(BudgetSplit::new(64 * 1_048_576, 8).fetch_bytes, 1_048_576);
        assert_eq!(split.partition_fetch_bytes, 1_048_576);
        assert_eq!(
            split.queue_messages,
            4 * 1_048_576 / LIBRDKAFKA_MESSAGE_OVERHEAD
        );
        assert_eq!(split.output_bytes, 8 * 1_048_576);
        // Output batches stay far below what Arrow's 32-bit offsets address.
        assert_eq!(BudgetSplit::new(64 << 30, 8).output_bytes, 1 << 30);
        assert_eq!(BudgetSplit::new(64 << 20, 8).output_bytes, 2 << 20);

        // A tiny budget with many partitions still gives librdkafka legal values.
        let split = BudgetSplit::new(1_048_576, 1000);
        assert_eq!(split.buffers, 262_144);
        assert_eq!(split.queue_kbytes, 1);
        assert_eq!(split.queue_messages, MIN_QUEUED_MESSAGES);
        assert_eq!(split.partition_fetch_bytes, MIN_RESPONSE_BYTES);
        assert_eq!(split.fetch_bytes, MIN_RESPONSE_BYTES);

        // A queue holds a whole record batch when the budget allows.
        let split = BudgetSplit::new(16 * 1_048_576, 8);
        assert_eq!(split.queue_kbytes, 1024);

        // Prefetch never exceeds half the budget, beyond librdkafka's minimums.
        for budget in [1usize << 20, 64 << 20, 1 << 30] {
            for partitions in [1usize, 8, 64] {
                let split = BudgetSplit::new(budget, partitions);
                assert!(split.buffers <= budget / 4);
                assert!(split.queue_kbytes * 1024 * partitions <= budget / 2 + partitions * 1024);
                assert!(split.fetch_bytes <= (budget / 64).max(MIN_RESPONSE_BYTES));
                assert!(split.partition_fetch_bytes <= split.fetch_bytes);
            }
        }
    }
}
