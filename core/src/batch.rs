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
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::decode::{PayloadDecoders, Side};
use crate::error::{Error, Result};
use crate::record::{Fields as MessageFields, Record};
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
    let mut columns = build_columns(ranges, records, &base_mask(!key, !value, true));
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

/// A column of the kafkars schema, as a projection names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `topic`
    Topic,
    /// `partition`
    Partition,
    /// `offset`
    Offset,
    /// `timestamp`
    Timestamp,
    /// `timestamp_type`
    TimestampType,
    /// `key`
    Key,
    /// `value`
    Value,
    /// `headers`
    Headers,
    /// `decode_error`: only with decoders that have one ([`PayloadDecoders::has_error_column`]).
    DecodeError,
}

impl Column {
    /// Every column, in schema order.
    pub const ALL: [Column; 9] = [
        Column::Topic,
        Column::Partition,
        Column::Offset,
        Column::Timestamp,
        Column::TimestampType,
        Column::Key,
        Column::Value,
        Column::Headers,
        Column::DecodeError,
    ];

    /// The column's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Column::Topic => "topic",
            Column::Partition => "partition",
            Column::Offset => "offset",
            Column::Timestamp => "timestamp",
            Column::TimestampType => "timestamp_type",
            Column::Key => "key",
            Column::Value => "value",
            Column::Headers => "headers",
            Column::DecodeError => "decode_error",
        }
    }

    /// The position of the column in [`schema_for`]'s schema.
    fn index(self) -> usize {
        self as usize
    }

    /// The columns the batches of `decoders` have, in schema order.
    pub fn available(decoders: &PayloadDecoders) -> Vec<Column> {
        let count = if decoders.has_error_column() { 9 } else { 8 };
        Column::ALL[..count].to_vec()
    }

    /// The projection `names`, in the order given, checked against the columns that
    /// `decoders`' batches have.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `columns` for an unknown or repeated name, listing
    /// the columns there are.
    pub fn parse_projection(names: &[String], decoders: &PayloadDecoders) -> Result<Vec<Column>> {
        let available = Column::available(decoders);
        let listed = || {
            available
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let column = available
                .iter()
                .copied()
                .find(|c| c.name() == name)
                .ok_or_else(|| Error::InvalidParameter {
                    parameter: "columns".into(),
                    reason: format!(
                        "unknown column '{name}'; the columns are {}{}",
                        listed(),
                        if name == "decode_error" {
                            " (decode_error exists only with on_error='null' and a key or \
                             value format)"
                        } else {
                            ""
                        }
                    ),
                })?;
            if columns.contains(&column) {
                return Err(Error::InvalidParameter {
                    parameter: "columns".into(),
                    reason: format!("column '{name}' is named twice"),
                });
            }
            columns.push(column);
        }
        Ok(columns)
    }

    /// The message fields a scan must copy to build `columns` (`decode_error` needs the
    /// bytes of every decoded side).
    pub fn fields(columns: &[Column], decoders: &PayloadDecoders) -> MessageFields {
        let errors = columns.contains(&Column::DecodeError);
        MessageFields {
            key: columns.contains(&Column::Key) || (errors && decoders.side(Side::Key).is_some()),
            value: columns.contains(&Column::Value)
                || (errors && decoders.side(Side::Value).is_some()),
            headers: columns.contains(&Column::Headers),
        }
    }
}

/// The schema of [`projected_batch`]: the fields of [`schema_for`] named by `columns`, in
/// that order.
pub fn projected_schema(decoders: &PayloadDecoders, columns: &[Column]) -> SchemaRef {
    let full = schema_for(decoders);
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| full.field(c.index()).clone())
            .collect::<Vec<_>>(),
    ))
}

/// Build one batch of `records` holding only `columns` (see [`Column::parse_projection`]):
/// payloads are decoded only for the columns asked for, and the bytes of keys, values and
/// headers are copied only into the columns asked for. With no columns, the batch has
/// `records.len()` rows and no column.
///
/// # Errors
/// Decoding errors (see [`PayloadDecoders::decode`]).
///
/// # Panics
/// If a record's `source` is not an index of `ranges`, or `columns` names `decode_error`
/// for decoders without one (caller bugs).
pub fn projected_batch(
    ranges: &[PartitionRange],
    records: &[Record],
    decoders: &mut PayloadDecoders,
    columns: &[Column],
) -> Result<RecordBatch> {
    let wanted = |column: Column| columns.contains(&column);
    let errors = wanted(Column::DecodeError);
    let decoded_key = decoders.side(Side::Key).is_some();
    let decoded_value = decoders.side(Side::Value).is_some();
    let decoded = if decoders.is_raw() {
        crate::decode::DecodedColumns::default()
    } else {
        decoders.decode(
            ranges,
            records,
            errors || wanted(Column::Key),
            errors || wanted(Column::Value),
        )?
    };
    let mut want: BaseMask = [false; BASE_COLUMNS];
    for column in columns {
        if let Some(slot) = want.get_mut(column.index()) {
            *slot = true;
        }
    }
    want[KEY] &= !decoded_key;
    want[VALUE] &= !decoded_value;
    let mut built: Vec<Option<ArrayRef>> = build_columns(ranges, records, &want)
        .into_iter()
        .map(Some)
        .collect();
    built[KEY] = decoded.key.or(built[KEY].take());
    built[VALUE] = decoded.value.or(built[VALUE].take());
    built.push(decoded.decode_error.map(|e| Arc::new(e) as ArrayRef));
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|c| {
            built[c.index()]
                .clone()
                .expect("every projected column was built")
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
    Ok(
        RecordBatch::try_new_with_options(projected_schema(decoders, columns), arrays, &options)
            .expect("projected columns match the schema announced for them"),
    )
}

/// Build one batch of `records`, whose `source` fields index `ranges`. Payload bytes are
/// copied once, from the records into the Arrow buffers.
///
/// # Panics
/// If a record's `source` is not an index of `ranges` (a caller bug).
pub fn records_to_batch(ranges: &[PartitionRange], records: &[Record]) -> RecordBatch {
    let columns = build_columns(ranges, records, &base_mask(true, true, true));
    RecordBatch::try_new(schema(), columns).expect("columns match the kafkars schema")
}

/// Which of the eight columns of [`schema`] to build, in schema order.
type BaseMask = [bool; BASE_COLUMNS];

const BASE_COLUMNS: usize = 8;

/// Every column, keys, values and headers only when asked for.
fn base_mask(key: bool, value: bool, headers: bool) -> BaseMask {
    [true, true, true, true, true, key, value, headers]
}

/// The columns of the kafkars schema, in schema order: those `want` asks for, and an empty
/// placeholder (which the caller replaces or drops) for the others.
fn build_columns(ranges: &[PartitionRange], records: &[Record], want: &BaseMask) -> Vec<ArrayRef> {
    let [with_topic, with_partition, with_offset, with_timestamp, with_timestamp_type, with_key, with_value, with_headers] =
        *want;
    let rows = records.len();
    let sized = |wanted: bool| if wanted { rows } else { 0 };
    let payload = |pick: fn(&Record) -> usize| records.iter().map(pick).sum::<usize>();
    let mut topic = StringBuilder::with_capacity(sized(with_topic), sized(with_topic) * 16);
    let mut partition = Int32Builder::with_capacity(sized(with_partition));
    let mut offset = Int64Builder::with_capacity(sized(with_offset));
    let mut timestamp =
        TimestampMillisecondBuilder::with_capacity(sized(with_timestamp)).with_timezone("UTC");
    let mut timestamp_type =
        StringBuilder::with_capacity(sized(with_timestamp_type), sized(with_timestamp_type) * 10);
    let mut key = BinaryBuilder::with_capacity(
        sized(with_key),
        if with_key {
            payload(|r| r.key().map_or(0, <[u8]>::len))
        } else {
            0
        },
    );
    let mut value = BinaryBuilder::with_capacity(
        sized(with_value),
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
    let mut headers = ListBuilder::with_capacity(header_builder, sized(with_headers)).with_field(
        Arc::new(Field::new("item", DataType::Struct(header_fields()), false)),
    );

    for record in records {
        if with_topic || with_partition {
            let range = &ranges[record.source as usize];
            if with_topic {
                topic.append_value(&range.topic);
            }
            if with_partition {
                partition.append_value(range.partition);
            }
        }
        if with_offset {
            offset.append_value(record.offset);
        }
        if with_timestamp {
            timestamp.append_option(record.timestamp_ms);
        }
        if with_timestamp_type {
            timestamp_type.append_option(record.timestamp_type.map(|t| t.as_str()));
        }
        if with_key {
            key.append_option(record.key());
        }
        if with_value {
            value.append_option(record.value());
        }
        if !with_headers {
            continue;
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

    fn raw_decoders() -> PayloadDecoders {
        let spec = crate::decode::DecodeParameters::default()
            .into_spec(None)
            .unwrap();
        PayloadDecoders::resolve(&spec, &[], &mut |_, _| Ok(Vec::new())).unwrap()
    }

    #[test]
    fn test_projected_batch_picks_and_orders_columns() {
        let records = vec![
            Record::new(
                1,
                7,
                Some(1_000),
                Some(TimestampType::CreateTime),
                Some(b"k".to_vec().into()),
                Some(b"v".to_vec().into()),
                vec![],
            ),
            Record::new(0, 2, None, None, None, None, vec![]),
        ];
        let mut raw = raw_decoders();
        let names: Vec<String> = ["value", "partition"].map(String::from).to_vec();
        let columns = Column::parse_projection(&names, &raw).unwrap();
        assert_eq!(columns, vec![Column::Value, Column::Partition]);
        let fields = Column::fields(&columns, &raw);
        assert!(fields.value && !fields.key && !fields.headers);
        let batch = projected_batch(&ranges(), &records, &mut raw, &columns).unwrap();
        assert_eq!(batch.schema().fields().len(), 2);
        assert_eq!(batch.schema().field(0).name(), "value");
        let value = batch.column(0).as_binary::<i32>();
        assert_eq!(value.value(0), b"v");
        assert!(value.is_null(1));
        let partition = batch.column(1).as_primitive::<Int32Type>();
        assert_eq!((partition.value(0), partition.value(1)), (3, 0));
        // No columns: the rows are still counted.
        let batch = projected_batch(&ranges(), &records, &mut raw, &[]).unwrap();
        assert_eq!((batch.num_rows(), batch.num_columns()), (2, 0));
    }

    #[test]
    fn test_projection_refuses_unknown_and_repeated_names() {
        let raw = raw_decoders();
        let parse = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            Column::parse_projection(&names, &raw)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            parse(&["offset", "size"]),
            "invalid columns: unknown column 'size'; the columns are topic, partition, offset, \
             timestamp, timestamp_type, key, value, headers"
        );
        assert_eq!(
            parse(&["key", "key"]),
            "invalid columns: column 'key' is named twice"
        );
        assert!(parse(&["decode_error"]).ends_with(
            "(decode_error exists only with on_error='null' and a key or value format)"
        ));
    }

    #[test]
    fn test_batch_empty_has_schema() {
        let batch = records_to_batch(&ranges(), &[]);
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), schema());
    }
}
