//! Arrow record batches in the kafkars schema (SPEC §2), built from released records.
//!
//! | column | Arrow type |
//! |---|---|
//! | `topic` | utf8 |
//! | `partition` | int32 |
//! | `offset` | int64 |
//! | `timestamp` | timestamp[ms, tz=UTC] (null when the message has none) |
//! | `timestamp_type` | utf8: `CreateTime` or `LogAppendTime` |
//! | `key` | binary, null for a null key |
//! | `value` | binary, null for a tombstone |
//! | `headers` | list<struct<key: utf8, value: binary>>, order and duplicates kept |
//!
//! ```
//! use kafkars_core::{batch, PartitionRange, Record, TimestampType};
//!
//! let ranges = vec![PartitionRange { topic: "events".into(), partition: 0, start: 0, stop: 1 }];
//! let records = vec![Record::new(
//!     0, 0, Some(1_700_000_000_000), Some(TimestampType::CreateTime),
//!     None, Some(b"hello".to_vec().into()), vec![],
//! )];
//! let batch = batch::records_to_batch(&ranges, &records);
//! assert_eq!(batch.num_rows(), 1);
//! assert_eq!(batch.schema(), batch::schema());
//! ```

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::decode::{PayloadDecoders, Side};
use crate::error::Result;
use crate::record::Record;
use crate::resolve::PartitionRange;

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The schema of every batch kafkars produces.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let header = Field::new("item", DataType::Struct(header_fields()), false);
            Arc::new(Schema::new(vec![
                Field::new("topic", DataType::Utf8, false),
                Field::new("partition", DataType::Int32, false),
                Field::new("offset", DataType::Int64, false),
                Field::new(
                    "timestamp",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    true,
                ),
                Field::new("timestamp_type", DataType::Utf8, true),
                Field::new("key", DataType::Binary, true),
                Field::new("value", DataType::Binary, true),
                Field::new("headers", DataType::List(Arc::new(header)), false),
            ]))
        })
        .clone()
}

/// The schema of batches whose keys or values `decoders` decode: `key` and `value` take the
/// decoded types (always nullable: a null key or a tombstone is NULL), and with
/// `on_error := 'null'` a `decode_error` utf8 column follows `headers`. Raw decoders give
/// [`schema`].
pub fn schema_for(decoders: &PayloadDecoders) -> SchemaRef {
    if decoders.is_raw() {
        return schema();
    }
    let base = schema();
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (index, side) in [(KEY, Side::Key), (VALUE, Side::Value)] {
        if let Some(decoder) = decoders.side(side) {
            fields[index] = Field::new(side.as_str(), decoder.data_type().clone(), true);
        }
    }
    if decoders.has_error_column() {
        fields.push(Field::new("decode_error", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

const KEY: usize = 5;
const VALUE: usize = 6;

/// Build one batch of `records`, whose `source` fields index `ranges`, decoding keys and
/// values with `decoders`; the batch has the schema [`schema_for`] gives.
///
/// # Errors
/// Decoding errors (see [`PayloadDecoders::decode`]).
///
/// # Panics
/// If a record's `source` is not an index of `ranges` (a caller bug).
pub fn decoded_batch(
    ranges: &[PartitionRange],
    records: &[Record],
    decoders: &mut PayloadDecoders,
) -> Result<RecordBatch> {
    if decoders.is_raw() {
        return Ok(records_to_batch(ranges, records));
    }
    let key = decoders.side(Side::Key).is_some();
    let value = decoders.side(Side::Value).is_some();
    let decoded = decoders.decode(ranges, records, key, value)?;
    let mut columns = build_columns(ranges, records, !key, !value);
    if let Some(array) = decoded.key {
        columns[KEY] = array;
    }
    if let Some(array) = decoded.value {
        columns[VALUE] = array;
    }
    if let Some(errors) = decoded.decode_error {
        columns.push(Arc::new(errors));
    }
    Ok(RecordBatch::try_new(schema_for(decoders), columns)
        .expect("decoded columns match the schema announced for them"))
}

/// Build one batch of `records`, whose `source` fields index `ranges`. Payload bytes are
/// copied once, from the records into the Arrow buffers.
///
/// # Panics
/// If a record's `source` is not an index of `ranges` (a caller bug).
pub fn records_to_batch(ranges: &[PartitionRange], records: &[Record]) -> RecordBatch {
    let columns = build_columns(ranges, records, true, true);
    RecordBatch::try_new(schema(), columns).expect("columns match the kafkars schema")
}

/// The columns of the kafkars schema; keys and values only when asked for (otherwise an
/// empty placeholder the caller replaces).
fn build_columns(
    ranges: &[PartitionRange],
    records: &[Record],
    with_key: bool,
    with_value: bool,
) -> Vec<ArrayRef> {
    let rows = records.len();
    let payload = |pick: fn(&Record) -> usize| records.iter().map(pick).sum::<usize>();
    let mut topic = StringBuilder::with_capacity(rows, rows * 16);
    let mut partition = Int32Builder::with_capacity(rows);
    let mut offset = Int64Builder::with_capacity(rows);
    let mut timestamp = TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut timestamp_type = StringBuilder::with_capacity(rows, rows * 10);
    let mut key = BinaryBuilder::with_capacity(
        rows,
        if with_key {
            payload(|r| r.key().map_or(0, <[u8]>::len))
        } else {
            0
        },
    );
    let mut value = BinaryBuilder::with_capacity(
        rows,
        if with_value {
            payload(|r| r.value().map_or(0, <[u8]>::len))
        } else {
            0
        },
    );
    let header_builder = StructBuilder::new(
        header_fields(),
        vec![
            Box::new(StringBuilder::new()) as Box<dyn arrow_array::builder::ArrayBuilder>,
            Box::new(BinaryBuilder::new()),
        ],
    );
    let mut headers = ListBuilder::with_capacity(header_builder, rows).with_field(Arc::new(
        Field::new("item", DataType::Struct(header_fields()), false),
    ));

    for record in records {
        let range = &ranges[record.source as usize];
        topic.append_value(&range.topic);
        partition.append_value(range.partition);
        offset.append_value(record.offset);
        timestamp.append_option(record.timestamp_ms);
        timestamp_type.append_option(record.timestamp_type.map(|t| t.as_str()));
        if with_key {
            key.append_option(record.key());
        }
        if with_value {
            value.append_option(record.value());
        }
        let entries = headers.values();
        for header in record.headers() {
            entries
                .field_builder::<StringBuilder>(0)
                .expect("header key builder")
                .append_value(&header.key);
            entries
                .field_builder::<BinaryBuilder>(1)
                .expect("header value builder")
                .append_option(header.value);
            entries.append(true);
        }
        headers.append(true);
    }

    vec![
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(timestamp_type.finish()),
        Arc::new(key.finish()),
        Arc::new(value.finish()),
        Arc::new(headers.finish()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, TimestampType};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;

    fn ranges() -> Vec<PartitionRange> {
        vec![
            PartitionRange {
                topic: "a".into(),
                partition: 0,
                start: 0,
                stop: 10,
            },
            PartitionRange {
                topic: "b".into(),
                partition: 3,
                start: 0,
                stop: 10,
            },
        ]
    }

    #[test]
    fn test_batch_columns_and_nulls() {
        let records = vec![
            Record::new(
                1,
                7,
                Some(1_000),
                Some(TimestampType::LogAppendTime),
                Some(b"k".to_vec().into()),
                None,
                vec![
                    Header {
                        key: "h".into(),
                        value: Some(b"1".to_vec().into()),
                    },
                    Header {
                        key: "h".into(),
                        value: None,
                    },
                ],
            ),
            Record::new(0, 2, None, None, None, Some(b"v".to_vec().into()), vec![]),
        ];
        let batch = records_to_batch(&ranges(), &records);
        assert_eq!(batch.num_rows(), 2);
        let topic = batch.column(0).as_string::<i32>();
        assert_eq!((topic.value(0), topic.value(1)), ("b", "a"));
        let partition = batch.column(1).as_primitive::<Int32Type>();
        assert_eq!((partition.value(0), partition.value(1)), (3, 0));
        let offset = batch.column(2).as_primitive::<Int64Type>();
        assert_eq!((offset.value(0), offset.value(1)), (7, 2));
        let timestamp = batch.column(3).as_primitive::<TimestampMillisecondType>();
        assert_eq!(timestamp.value(0), 1_000);
        assert!(timestamp.is_null(1));
        let kind = batch.column(4).as_string::<i32>();
        assert_eq!(kind.value(0), "LogAppendTime");
        assert!(kind.is_null(1));
        let key = batch.column(5).as_binary::<i32>();
        assert_eq!(key.value(0), b"k");
        assert!(key.is_null(1));
        let value = batch.column(6).as_binary::<i32>();
        assert!(value.is_null(0));
        assert_eq!(value.value(1), b"v");

        let headers = batch.column(7).as_list::<i32>();
        assert_eq!(headers.value_length(0), 2);
        assert_eq!(headers.value_length(1), 0);
        let first = headers.value(0);
        let entries = first.as_struct();
        let keys = entries.column(0).as_string::<i32>();
        let values = entries.column(1).as_binary::<i32>();
        assert_eq!((keys.value(0), keys.value(1)), ("h", "h"));
        assert_eq!(values.value(0), b"1");
        assert!(values.is_null(1));
    }

    #[test]
    fn test_batch_empty_has_schema() {
        let batch = records_to_batch(&ranges(), &[]);
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), schema());
    }
}
