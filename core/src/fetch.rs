//! Fetching: one librdkafka consumer, assigned (never subscribed) to every partition of a
//! scan at its resolved start offset, with one queue per partition so that each partition can
//! be read — or left alone — on its own.
//!
//! Leaving a partition's queue unpolled is how a partition that runs ahead is held back: its
//! queue fills up to its share of the prefetch budget (`queued.max.messages.kbytes`) and
//! librdkafka stops fetching it until we read again. Nothing is lost or fetched twice, unlike
//! `pause()`, which drops prefetched data.

use std::ffi::CStr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::error::{kafka_reason, Error, Result};
use crate::record::{Fields, Header, Record, TimestampType};
use crate::resolve::PartitionRange;
use crate::settings::ClientSettings;

/// librdkafka's upper limit for `queued.max.messages.kbytes`.
const MAX_QUEUE_KBYTES: usize = 2_097_151;
/// librdkafka's lower limit for `message.max.bytes` (and so for `fetch.max.bytes`).
const MIN_FETCH_BYTES: usize = 1_000;
/// Kafka's usual per-partition fetch size; more buys nothing for a single partition.
const MAX_PARTITION_FETCH_BYTES: usize = 1_048_576;

/// How the memory budget is split between librdkafka's prefetch queues and our buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSplit {
    /// Bytes our per-partition buffers may hold together.
    pub buffers: usize,
    /// `queued.max.messages.kbytes`: each partition's prefetch queue.
    pub queue_kbytes: usize,
    /// `max.partition.fetch.bytes`.
    pub partition_fetch_bytes: usize,
    /// `fetch.max.bytes` (and `message.max.bytes`, which librdkafka requires not to exceed it).
    pub fetch_bytes: usize,
}

impl BudgetSplit {
    /// Split `max_buffer_bytes` for `partitions` partitions: half for our buffers, half for
    /// librdkafka's queues and the fetch in flight.
    pub fn new(max_buffer_bytes: usize, partitions: usize) -> Self {
        let partitions = partitions.max(1);
        let prefetch = max_buffer_bytes / 2;
        let per_partition = prefetch / 2 / partitions;
        Self {
            buffers: max_buffer_bytes - prefetch,
            queue_kbytes: (per_partition / 1024).clamp(1, MAX_QUEUE_KBYTES),
            // Brokers return at least one message per fetch even when it is larger than these,
            // so small values slow a scan down but never stall it.
            partition_fetch_bytes: per_partition.clamp(MIN_FETCH_BYTES, MAX_PARTITION_FETCH_BYTES),
            fetch_bytes: (prefetch / 2).clamp(MIN_FETCH_BYTES, 50 * 1_048_576),
        }
    }
}

/// What polling one partition gave.
pub(crate) enum Polled {
    /// A message inside the partition's range (or any message, when no stop applies).
    Record(Record),
    /// The first message at or past the stop offset: the range is complete. Follow mode
    /// keeps it as the first live message.
    PastStop(Record),
    /// The partition reached its stop offset without a message to show for it.
    Done,
    /// Nothing right now.
    Nothing,
}

/// The consumer and its per-partition queues.
pub(crate) struct Fetcher {
    consumer: Arc<BaseConsumer>,
    /// One queue per source; `None` for partitions with nothing to read.
    queues: Vec<Option<PartitionQueue<DefaultConsumerContext>>>,
    fields: Fields,
}

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
        "max.partition.fetch.bytes",
        &budget.partition_fetch_bytes.to_string(),
    );
    set_default(
        &mut config,
        settings,
        "fetch.max.bytes",
        &budget.fetch_bytes.to_string(),
    );
    set_default(
        &mut config,
        settings,
        "message.max.bytes",
        &budget.fetch_bytes.min(1_000_000).to_string(),
    );
    // A full queue is re-checked after this long; librdkafka's 1 s default idles a scan that
    // is draining a small budget.
    set_default(&mut config, settings, "fetch.queue.backoff.ms", "10");
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
    ) -> Result<Self> {
        let read = |range: &PartitionRange| follow || range.start < range.stop;
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
        let queues = ranges
            .iter()
            .map(|range| {
                read(range)
                    .then(|| consumer.split_partition_queue(&range.topic, range.partition))
                    .flatten()
            })
            .collect();
        Ok(Self {
            consumer,
            queues,
            fields,
        })
    }

    /// Serve the consumer's main queue, where errors that concern no single partition
    /// arrive. Returns the first fatal error.
    pub(crate) fn poll_events(&self, settings: &ClientSettings) -> Result<()> {
        while let Some(event) = self.consumer.poll(Duration::ZERO) {
            if let Err(error) = event {
                if !is_transient(&error) {
                    return Err(Error::Fetch {
                        topic: String::new(),
                        partition: None,
                        brokers: settings.brokers().to_owned(),
                        reason: settings.redact(&kafka_reason(&error)),
                    });
                }
            }
        }
        Ok(())
    }

    /// Poll partition `source` once, waiting at most `wait`. With `bounded`, messages are
    /// checked against the range's stop; without (follow mode, once live), every message is
    /// simply delivered.
    pub(crate) fn poll(
        &self,
        settings: &ClientSettings,
        source: usize,
        range: &PartitionRange,
        wait: Duration,
        bounded: bool,
    ) -> Result<Polled> {
        let Some(queue) = &self.queues[source] else {
            return Ok(Polled::Done);
        };
        match queue.poll(wait) {
            None => Ok(Polled::Nothing),
            Some(Ok(message)) => {
                let record = copy_record(source, &message, self.fields);
                if bounded && record.offset >= range.stop {
                    return Ok(Polled::PastStop(record));
                }
                Ok(Polled::Record(record))
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if bounded && self.position(settings, range)? >= range.stop {
                    Ok(Polled::Done)
                } else {
                    Ok(Polled::Nothing)
                }
            }
            Some(Err(error)) if is_transient(&error) => Ok(Polled::Nothing),
            Some(Err(error)) => Err(fetch_error(settings, range, &error)),
        }
    }

    /// The consumer's position in `range`'s partition: the offset after the last message (or
    /// transaction marker) it consumed. A cheap local read.
    pub(crate) fn position(
        &self,
        settings: &ClientSettings,
        range: &PartitionRange,
    ) -> Result<i64> {
        let positions = self
            .consumer
            .position()
            .map_err(|error| fetch_error(settings, range, &error))?;
        Ok(positions
            .find_partition(&range.topic, range.partition)
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
            .unwrap_or(range.start))
    }
}

/// Errors librdkafka recovers from by itself (reconnecting, re-fetching metadata): a scan
/// waits through them, bounded by its no-progress timeout.
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
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

/// Copy what the query needs out of librdkafka's buffer: this is the one copy of key, value
/// and header bytes on their way out.
fn copy_record(source: usize, message: &BorrowedMessage<'_>, fields: Fields) -> Record {
    let (timestamp_ms, timestamp_type) = match message.timestamp() {
        Timestamp::NotAvailable => (None, None),
        Timestamp::CreateTime(ms) => (Some(ms), Some(TimestampType::CreateTime)),
        Timestamp::LogAppendTime(ms) => (Some(ms), Some(TimestampType::LogAppendTime)),
    };
    Record {
        source: u32::try_from(source).unwrap_or(u32::MAX),
        offset: message.offset(),
        timestamp_ms,
        timestamp_type,
        key: if fields.key {
            message.key().map(Box::from)
        } else {
            None
        },
        value: if fields.value {
            message.payload().map(Box::from)
        } else {
            None
        },
        headers: if fields.headers {
            copy_headers(message)
        } else {
            Vec::new()
        },
    }
}

/// Read the headers through librdkafka's C API: rdkafka's safe accessor panics on header
/// keys that are not UTF-8, which any producer can send.
fn copy_headers(message: &BorrowedMessage<'_>) -> Vec<Header> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: the message pointer is live for the borrow; librdkafka keeps ownership of the
    // headers, which live as long as the message.
    let found = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if found != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return Vec::new();
    }
    let mut copied = Vec::new();
    for index in 0.. {
        let mut name: *const std::os::raw::c_char = std::ptr::null();
        let mut value: *const std::os::raw::c_void = std::ptr::null();
        let mut size: usize = 0;
        // SAFETY: `headers` is live; librdkafka writes pointers into its own storage.
        let status = unsafe {
            rdsys::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
        };
        if status != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: librdkafka's header names are NUL-terminated.
        let key = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let value = (!value.is_null()).then(|| {
            // SAFETY: `value` points to `size` bytes owned by the message.
            Box::from(unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) })
        });
        copied.push(Header { key, value });
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_budget_split_bounds() {
        let split = BudgetSplit::new(256 * 1_048_576, 8);
        assert_eq!(split.buffers, 128 * 1_048_576);
        assert_eq!(split.queue_kbytes, 8 * 1024);
        assert_eq!(split.partition_fetch_bytes, MAX_PARTITION_FETCH_BYTES);
        assert_eq!(split.fetch_bytes, 50 * 1_048_576);

        // A tiny budget with many partitions still gives librdkafka legal values.
        let split = BudgetSplit::new(1_048_576, 1000);
        assert_eq!(split.buffers, 524_288);
        assert_eq!(split.queue_kbytes, 1);
        assert_eq!(split.partition_fetch_bytes, MIN_FETCH_BYTES);
        assert_eq!(split.fetch_bytes, 262_144);

        // Prefetch never exceeds half the budget, beyond librdkafka's minimums.
        for budget in [1usize << 20, 64 << 20, 1 << 30] {
            for partitions in [1usize, 8, 64] {
                let split = BudgetSplit::new(budget, partitions);
                assert!(split.buffers <= budget / 2 + 1);
                assert!(split.queue_kbytes * 1024 * partitions <= budget / 2 + partitions * 1024);
            }
        }
    }
}
