//! Messages as kafkars holds them between librdkafka and the output.

use std::borrow::Cow;
use std::sync::Arc;

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

/// A message held by kafkars: where it came from, its timestamp, and its key, value and headers,
/// copied out of librdkafka into a [`Chunk`] it shares with the records fetched with it.
#[derive(Debug)]
pub struct Record {
    /// Index of the partition it came from in the scan's partition list.
    pub source: u32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in ms since the epoch; `None` when the message has none.
    pub timestamp_ms: Option<i64>,
    /// How the timestamp was set; `None` when the message has none.
    pub timestamp_type: Option<TimestampType>,
    /// The bytes its key, value and headers lie in; `None` when it has none of them.
    chunk: Option<Arc<Chunk>>,
    key: Option<Span>,
    value: Option<Span>,
    /// Each header's key and value.
    headers: Box<[(Span, Option<Span>)]>,
    /// What it is charged against the memory budget.
    charged: usize,
}

/// Where a key, value or header lies in its record's chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

/// The payload bytes of a run of consecutive records of one partition, freed with the last of
/// them.
///
/// Why copies, and why in chunks: a librdkafka message that is held keeps its op (235 bytes)
/// and its whole fetch response alive, and destroying it later, cold and on another thread
/// than the one that allocated it, was the largest single cost of our reading thread (12 % of
/// a scan's samples in `free`). A record's payloads are copied once more, into a chunk filled
/// in fetch order, and the message is destroyed at once, as a plain consumer would; a chunk
/// is one allocation for many records, released as one. Over 1,000 partitions, held messages
/// had kept the whole topic's responses alive (900 MB at a 256 MiB budget).
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    bytes: Vec<u8>,
}

impl Chunk {
    /// An empty chunk with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// Bytes it has room for without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Append `bytes` and say where they lie, or `None` when the chunk would pass 4 GiB (the
    /// caller starts a new chunk; no Kafka message comes near that size).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Option<Span> {
        let start = u32::try_from(self.bytes.len()).ok()?;
        let len = u32::try_from(bytes.len()).ok()?;
        start.checked_add(len)?;
        self.bytes.extend_from_slice(bytes);
        Some(Span { start, len })
    }

    fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        // Spans are made by `push` on this chunk, so they are in bounds.
        &self.bytes[start..start + span.len as usize]
    }
}

/// A record's payloads as spans of a chunk still being filled: what [`Record::in_chunk`] needs
/// once the chunk is complete.
#[derive(Debug, Default)]
pub(crate) struct Payloads {
    pub(crate) key: Option<Span>,
    pub(crate) value: Option<Span>,
    pub(crate) headers: Vec<(Span, Option<Span>)>,
}

/// One header of a [`Record`], borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The key. Keys that are not valid UTF-8 (producers can send any bytes) are decoded
    /// lossily, with U+FFFD for each bad sequence.
    pub key: Cow<'a, str>,
    /// The value; `None` for a null value.
    pub value: Option<&'a [u8]>,
}

/// Bytes a record is charged beyond its payloads, so that many tiny messages are not free.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Record>();
/// Bytes charged per header beyond its key and value.
const HEADER_OVERHEAD: usize = std::mem::size_of::<(Span, Option<Span>)>();

impl Record {
    /// A record that owns its key, value and headers (tests, and data that did not come from
    /// a fetch).
    pub fn new(
        source: u32,
        offset: i64,
        timestamp_ms: Option<i64>,
        timestamp_type: Option<TimestampType>,
        key: Option<Box<[u8]>>,
        value: Option<Box<[u8]>>,
        headers: Vec<Header>,
    ) -> Self {
        let mut chunk = Chunk::default();
        let mut push = |bytes: &[u8]| chunk.push(bytes).expect("a hand-built record under 4 GiB");
        let payloads = Payloads {
            key: key.as_deref().map(&mut push),
            value: value.as_deref().map(&mut push),
            headers: headers
                .iter()
                .map(|header| {
                    (
                        push(header.key.as_bytes()),
                        header.value.as_deref().map(&mut push),
                    )
                })
                .collect(),
        };
        Self::in_chunk(
            source,
            offset,
            timestamp_ms,
            timestamp_type,
            &Arc::new(chunk),
            payloads,
        )
    }

    /// A record whose payloads were written into `chunk`.
    pub(crate) fn in_chunk(
        source: u32,
        offset: i64,
        timestamp_ms: Option<i64>,
        timestamp_type: Option<TimestampType>,
        chunk: &Arc<Chunk>,
        payloads: Payloads,
    ) -> Self {
        let len = |span: Option<Span>| span.map_or(0, |span| span.len as usize);
        let mut charged = RECORD_OVERHEAD + len(payloads.key) + len(payloads.value);
        for (key, value) in &payloads.headers {
            charged += HEADER_OVERHEAD + key.len as usize + len(*value);
        }
        let empty =
            payloads.key.is_none() && payloads.value.is_none() && payloads.headers.is_empty();
        Self {
            source,
            offset,
            timestamp_ms,
            timestamp_type,
            chunk: (!empty).then(|| Arc::clone(chunk)),
            key: payloads.key,
            value: payloads.value,
            headers: payloads.headers.into_boxed_slice(),
            charged,
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        // A record with a span has its chunk.
        self.chunk.as_deref().map_or(&[], |chunk| chunk.get(span))
    }

    /// The key; `None` for a null key (or one the scan did not copy).
    pub fn key(&self) -> Option<&[u8]> {
        self.key.map(|span| self.bytes(span))
    }

    /// The value; `None` for a tombstone (or one the scan did not copy).
    pub fn value(&self) -> Option<&[u8]> {
        self.value.map(|span| self.bytes(span))
    }

    /// How many headers the message has.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The headers in order. Kafka keeps header order and allows duplicate keys; both survive.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.headers.iter().map(|&(key, value)| HeaderRef {
            key: String::from_utf8_lossy(self.bytes(key)),
            value: value.map(|span| self.bytes(span)),
        })
    }

    /// The bytes this record occupies, as counted against `max_buffer_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.charged
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_record_stays_small() {
        // Every record is moved from the poll through the merge to the output: its size is
        // paid per message, and it is what a 100-byte message is charged beyond its payloads.
        assert_eq!(std::mem::size_of::<Record>(), 88);
    }

    #[test]
    fn test_records_share_their_chunk_and_read_back_their_spans() {
        let mut chunk = Chunk::with_capacity(16);
        let first = Payloads {
            key: chunk.push(b"k1"),
            value: chunk.push(b"value-1"),
            headers: vec![(chunk.push(b"h").unwrap(), None)],
        };
        let second = Payloads {
            key: None,
            value: chunk.push(b"v2"),
            headers: Vec::new(),
        };
        let chunk = Arc::new(chunk);
        let records = [
            Record::in_chunk(
                0,
                7,
                Some(1),
                Some(TimestampType::CreateTime),
                &chunk,
                first,
            ),
            Record::in_chunk(0, 8, None, None, &chunk, second),
            Record::in_chunk(0, 9, None, None, &chunk, Payloads::default()),
        ];
        assert_eq!(
            Arc::strong_count(&chunk),
            3,
            "the empty record holds no chunk"
        );
        assert_eq!(records[0].key(), Some(&b"k1"[..]));
        assert_eq!(records[0].value(), Some(&b"value-1"[..]));
        let headers: Vec<_> = records[0].headers().collect();
        assert_eq!(
            headers,
            vec![HeaderRef {
                key: "h".into(),
                value: None
            }]
        );
        assert_eq!(records[1].key(), None);
        assert_eq!(records[1].value(), Some(&b"v2"[..]));
        assert_eq!(records[1].header_count(), 0);
        assert_eq!((records[2].key(), records[2].value()), (None, None));
        assert_eq!(records[1].buffered_bytes(), RECORD_OVERHEAD + 2);
        drop(records);
        assert_eq!(Arc::strong_count(&chunk), 1, "freed with its last record");
    }

    #[test]
    fn test_owned_record_fields_and_charge() {
        let record = Record::new(
            0,
            5,
            Some(1),
            Some(TimestampType::CreateTime),
            Some(b"key".to_vec().into()),
            None,
            vec![Header {
                key: "h".into(),
                value: Some(b"12".to_vec().into()),
            }],
        );
        assert_eq!(record.key(), Some(&b"key"[..]));
        assert_eq!(record.value(), None);
        let headers: Vec<_> = record.headers().collect();
        assert_eq!(
            headers,
            vec![HeaderRef {
                key: "h".into(),
                value: Some(&b"12"[..])
            }]
        );
        assert_eq!(
            record.buffered_bytes(),
            RECORD_OVERHEAD + 3 + HEADER_OVERHEAD + 1 + 2
        );
    }
}
