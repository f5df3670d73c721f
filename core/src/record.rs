//! Messages as kafkars holds them between librdkafka and the output.

use std::borrow::Cow;

use crate::message::KafkaMessage;

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
/// still in librdkafka's fetch buffer (or owned, for records built by hand).
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
    body: Body,
    /// What it is charged against the memory budget.
    charged: usize,
}

#[derive(Debug)]
enum Body {
    Fetched(KafkaMessage),
    Owned {
        key: Option<Box<[u8]>>,
        value: Option<Box<[u8]>>,
        headers: Vec<Header>,
    },
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

/// What librdkafka holds per fetched message beyond its key and value: the op it allocates
/// for each message (235 bytes with librdkafka 2.12 on x86-64, measured with heaptrack) and
/// the record's framing in the fetch response the payloads point into, rounded up.
pub(crate) const LIBRDKAFKA_MESSAGE_OVERHEAD: usize = 288;

/// Bytes a record is charged beyond its payloads: our struct plus librdkafka's per-message
/// bookkeeping, so that many tiny messages are not free.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Record>() + LIBRDKAFKA_MESSAGE_OVERHEAD;
/// Bytes charged per header beyond its key and value.
const HEADER_OVERHEAD: usize = 32;

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
        let body = Body::Owned {
            key,
            value,
            headers,
        };
        Self::with_body(source, offset, timestamp_ms, timestamp_type, body, true)
    }

    /// A fetched message. With `headers`, they are parsed now and charged.
    pub(crate) fn fetched(
        source: u32,
        offset: i64,
        timestamp_ms: Option<i64>,
        timestamp_type: Option<TimestampType>,
        message: KafkaMessage,
        headers: bool,
    ) -> Self {
        let body = Body::Fetched(message);
        Self::with_body(source, offset, timestamp_ms, timestamp_type, body, headers)
    }

    /// A record around `body`, charged for its payloads (and, with `headers`, its headers).
    fn with_body(
        source: u32,
        offset: i64,
        timestamp_ms: Option<i64>,
        timestamp_type: Option<TimestampType>,
        body: Body,
        headers: bool,
    ) -> Self {
        let mut record = Self {
            source,
            offset,
            timestamp_ms,
            timestamp_type,
            body,
            charged: 0,
        };
        record.charged = record.measure(headers);
        record
    }

    fn measure(&self, headers: bool) -> usize {
        let len = |bytes: Option<&[u8]>| bytes.map_or(0, <[u8]>::len);
        let mut bytes = RECORD_OVERHEAD + len(self.key()) + len(self.value());
        if headers {
            bytes += self
                .headers()
                .map(|h| HEADER_OVERHEAD + h.key.len() + len(h.value))
                .sum::<usize>();
        }
        bytes
    }

    /// The key; `None` for a null key.
    pub fn key(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Fetched(message) => message.key(),
            Body::Owned { key, .. } => key.as_deref(),
        }
    }

    /// The value; `None` for a tombstone.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Fetched(message) => message.value(),
            Body::Owned { value, .. } => value.as_deref(),
        }
    }

    /// How many headers the message has.
    pub fn header_count(&self) -> usize {
        match &self.body {
            Body::Fetched(message) => message.header_count(),
            Body::Owned { headers, .. } => headers.len(),
        }
    }

    /// The headers in order. Kafka keeps header order and allows duplicate keys; both survive.
    pub fn headers(&self) -> Box<dyn Iterator<Item = HeaderRef<'_>> + '_> {
        match &self.body {
            Body::Fetched(message) => Box::new(message.headers().map(|(key, value)| HeaderRef {
                key: String::from_utf8_lossy(key),
                value,
            })),
            Body::Owned { headers, .. } => Box::new(headers.iter().map(|header| HeaderRef {
                key: Cow::Borrowed(header.key.as_str()),
                value: header.value.as_deref(),
            })),
        }
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
