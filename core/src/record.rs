//! Messages as kafkars holds them between librdkafka and the output: owned copies of the
//! fields the query needs, and nothing else.

/// How the broker stamped a message's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the message.
    LogAppendTime,
}

impl TimestampType {
    /// The name Kafka uses, as shown in the `timestamp_type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// One message header. Kafka keeps header order and allows duplicate keys; both survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's key. Keys that are not valid UTF-8 (producers can send any bytes) are
    /// decoded lossily, with U+FFFD for each bad sequence.
    pub key: String,
    /// The header's value; `None` for a null value.
    pub value: Option<Box<[u8]>>,
}

/// Which optional fields a scan copies out of librdkafka. A query that does not read the key,
/// the value or the headers does not pay for copying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// Copy message keys.
    pub key: bool,
    /// Copy message values.
    pub value: bool,
    /// Copy message headers.
    pub headers: bool,
}

impl Fields {
    /// Every field.
    pub const ALL: Fields = Fields {
        key: true,
        value: true,
        headers: true,
    };
}

/// A message held by kafkars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Index of the partition it came from in the scan's partition list.
    pub source: u32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in ms since the epoch; `None` when the message has none.
    pub timestamp_ms: Option<i64>,
    /// How the timestamp was set; `None` when the message has none.
    pub timestamp_type: Option<TimestampType>,
    /// The key; `None` for a null key or when keys are not copied.
    pub key: Option<Box<[u8]>>,
    /// The value; `None` for a tombstone or when values are not copied.
    pub value: Option<Box<[u8]>>,
    /// The headers, in order; empty when there are none or headers are not copied.
    pub headers: Vec<Header>,
}

/// Bytes a record is charged against the memory budget beyond its payloads: the struct itself
/// plus its slot in the buffer, so that many tiny messages are not free.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Record>();
/// What the allocator adds to each separately allocated key, value or header.
const ALLOCATION_OVERHEAD: usize = 16;

impl Record {
    /// The bytes this record occupies, as counted against `max_buffer_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        let payload =
            |bytes: &Option<Box<[u8]>>| bytes.as_ref().map_or(0, |b| b.len() + ALLOCATION_OVERHEAD);
        RECORD_OVERHEAD
            + payload(&self.key)
            + payload(&self.value)
            + self
                .headers
                .iter()
                .map(|h| {
                    std::mem::size_of::<Header>()
                        + h.key.len()
                        + ALLOCATION_OVERHEAD
                        + payload(&h.value)
                })
                .sum::<usize>()
    }

    /// The timestamp the ordered merge sorts by.
    ///
    /// A message without a timestamp (possible with pre-0.10 message formats) sorts before
    /// every timestamped one: it is released as soon as it is its partition's head, so it
    /// never holds other partitions back, and the partition's offset order still holds.
    pub fn merge_timestamp(&self) -> i64 {
        self.timestamp_ms.unwrap_or(i64::MIN)
    }
}
