//! Messages as kafkars holds them between librdkafka and the output.

use std::borrow::Cow;
use std::sync::Arc;

use crate::chunk::{Chunk, ChunkWriter, Span};

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
/// copied out of librdkafka into a chunk it shares with the partition's neighbouring records
/// (see the `chunk` module).
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

/// Where a record's payloads lie in its chunk: what [`Record::in_chunk`] needs.
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
        let len = |bytes: Option<&[u8]>| bytes.map_or(0, <[u8]>::len);
        let total = len(key.as_deref())
            + len(value.as_deref())
            + headers
                .iter()
                .map(|header| header.key.len() + len(header.value.as_deref()))
                .sum::<usize>();
        let mut writer = ChunkWriter::exact(total);
        let mut push = |bytes: &[u8]| {
            writer
                .push(bytes)
                .expect("a hand-built record's payloads under 4 GiB")
        };
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
            Some(writer.chunk()),
            payloads,
        )
    }

    /// A record whose payloads were written into `chunk`; `None` only for a record without
    /// payloads (nothing was copied, so no chunk was opened for it).
    pub(crate) fn in_chunk(
        source: u32,
        offset: i64,
        timestamp_ms: Option<i64>,
        timestamp_type: Option<TimestampType>,
        chunk: Option<&Arc<Chunk>>,
        payloads: Payloads,
    ) -> Self {
        let len = |span: Option<Span>| span.map_or(0, Span::len);
        let mut charged = RECORD_OVERHEAD + len(payloads.key) + len(payloads.value);
        for (key, value) in &payloads.headers {
            charged += HEADER_OVERHEAD + key.len() + len(*value);
        }
        let empty =
            payloads.key.is_none() && payloads.value.is_none() && payloads.headers.is_empty();
        debug_assert!(
            empty || chunk.is_some(),
            "payload spans without their chunk"
        );
        Self {
            source,
            offset,
            timestamp_ms,
            timestamp_type,
            chunk: chunk.filter(|_| !empty).cloned(),
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
        let mut writer = ChunkWriter::exact(16);
        let first = Payloads {
            key: writer.push(b"k1"),
            value: writer.push(b"value-1"),
            headers: vec![(writer.push(b"h").unwrap(), None)],
        };
        let second = Payloads {
            key: None,
            value: writer.push(b"v2"),
            headers: Vec::new(),
        };
        let chunk = Arc::clone(writer.chunk());
        drop(writer);
        let records = [
            Record::in_chunk(
                0,
                7,
                Some(1),
                Some(TimestampType::CreateTime),
                Some(&chunk),
                first,
            ),
            Record::in_chunk(0, 8, None, None, Some(&chunk), second),
            Record::in_chunk(0, 9, None, None, Some(&chunk), Payloads::default()),
            Record::in_chunk(0, 10, None, None, None, Payloads::default()),
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
        assert_eq!((records[3].key(), records[3].value()), (None, None));
        assert_eq!(records[3].buffered_bytes(), RECORD_OVERHEAD);
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
