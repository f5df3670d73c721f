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

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, ListArray, RecordBatch, RecordBatchOptions,
    StringArray, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{
    BooleanBuffer, BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::decode::{PayloadDecoders, Side};
use crate::error::{Error, Result};
use crate::record::{Fields as MessageFields, HeaderRef, Record, TimestampType};
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
///
/// Each column is built on its own, lengths first: one pass sums the bytes a variable-width
/// column needs, the next copies them into a buffer allocated once at that size. No per-row
/// builder call, no buffer growing while copying (the builders' doubling copied every payload
/// about twice more).
fn build_columns(ranges: &[PartitionRange], records: &[Record], want: &BaseMask) -> Vec<ArrayRef> {
    let [with_topic, with_partition, with_offset, with_timestamp, with_timestamp_type, with_key, with_value, with_headers] =
        *want;
    let empty = |data_type: &DataType| arrow_array::new_empty_array(data_type);
    let full = schema();
    let placeholder = |index: usize| empty(full.field(index).data_type());
    let source = |record: &Record| &ranges[record.source as usize];
    vec![
        if with_topic {
            Arc::new(string_column(records, |r| Some(source(r).topic.as_str())))
        } else {
            placeholder(0)
        },
        if with_partition {
            Arc::new(Int32Array::from_iter_values(
                records.iter().map(|r| source(r).partition),
            ))
        } else {
            placeholder(1)
        },
        if with_offset {
            Arc::new(Int64Array::from_iter_values(
                records.iter().map(|r| r.offset),
            ))
        } else {
            placeholder(2)
        },
        if with_timestamp {
            Arc::new(timestamp_column(records))
        } else {
            placeholder(3)
        },
        if with_timestamp_type {
            Arc::new(string_column(records, |r| {
                r.timestamp_type.map(TimestampType::as_str)
            }))
        } else {
            placeholder(4)
        },
        if with_key {
            Arc::new(binary_column(records, Record::key))
        } else {
            placeholder(KEY)
        },
        if with_value {
            Arc::new(binary_column(records, Record::value))
        } else {
            placeholder(VALUE)
        },
        if with_headers {
            Arc::new(headers_column(records))
        } else {
            placeholder(7)
        },
    ]
}

/// Arrow's offsets of `lengths` (the first offset 0). A scan's calls return at most
/// [`crate::fetch::BudgetSplit`]'s output bytes (see [`crate::Scan::next_records`]), far below
/// the 2 GiB that 32-bit offsets allow.
///
/// # Panics
/// If the lengths add up to more than `i32::MAX` bytes (a caller bug, see above).
fn offsets(lengths: impl Iterator<Item = usize>) -> OffsetBuffer<i32> {
    OffsetBuffer::from_lengths(lengths)
}

/// The validity of `rows` rows, `None` when every row is valid (Arrow's convention, which also
/// spares consumers the bitmap).
fn validity(valid: BooleanBuffer) -> Option<NullBuffer> {
    let nulls = NullBuffer::new(valid);
    (nulls.null_count() > 0).then_some(nulls)
}

/// The bytes of `items` (one per row, `None` for a null) concatenated into one buffer sized
/// beforehand, with their offsets and validity.
fn concatenated<'a>(
    items: impl Iterator<Item = Option<&'a [u8]>> + Clone,
) -> (OffsetBuffer<i32>, Buffer, Option<NullBuffer>) {
    // One pass for the lengths and the validity, one for the copy.
    let mut valid = BooleanBufferBuilder::new(items.size_hint().0);
    let offsets = offsets(items.clone().map(|item| {
        valid.append(item.is_some());
        item.map_or(0, <[u8]>::len)
    }));
    let mut values = Vec::with_capacity(usize::try_from(offsets.last()).unwrap_or(0));
    for bytes in items.flatten() {
        values.extend_from_slice(bytes);
    }
    (offsets, Buffer::from_vec(values), validity(valid.finish()))
}

/// A binary column of `pick(record)` per record, null where it gives `None`.
fn binary_column(records: &[Record], pick: fn(&Record) -> Option<&[u8]>) -> BinaryArray {
    let (offsets, values, nulls) = concatenated(records.iter().map(pick));
    BinaryArray::new(offsets, values, nulls)
}

/// A utf8 column of `pick(record)` per record, null where it gives `None`.
fn string_column<'a>(
    records: &'a [Record],
    pick: impl Fn(&'a Record) -> Option<&'a str> + Clone,
) -> StringArray {
    let (offsets, values, nulls) =
        concatenated(records.iter().map(move |r| pick(r).map(str::as_bytes)));
    // SAFETY: the values are whole `&str`s laid end to end, so valid UTF-8 split at the
    // offsets; the offsets are increasing lengths from 0 (`OffsetBuffer::from_lengths`).
    // Checking again would read every byte a second time.
    unsafe { StringArray::new_unchecked(offsets, values, nulls) }
}

/// The `timestamp` column: milliseconds since the epoch in UTC, null for a record without one.
fn timestamp_column(records: &[Record]) -> TimestampMillisecondArray {
    let values: ScalarBuffer<i64> = records
        .iter()
        .map(|r| r.timestamp_ms.unwrap_or(0))
        .collect();
    let nulls = validity(records.iter().map(|r| r.timestamp_ms.is_some()).collect());
    TimestampMillisecondArray::new(values, nulls).with_timezone("UTC")
}

/// The `headers` column: per record a list of its `{key, value}` headers, in order.
fn headers_column(records: &[Record]) -> ListArray {
    let field = Arc::new(Field::new("item", DataType::Struct(header_fields()), false));
    let list_offsets = offsets(records.iter().map(Record::header_count));
    // Most topics carry no headers: then nothing is read beyond the counts.
    let headers: Vec<HeaderRef<'_>> = if list_offsets.last() > 0 {
        records.iter().flat_map(Record::headers).collect()
    } else {
        Vec::new()
    };
    let (key_offsets, key_values, _) = concatenated(headers.iter().map(|h| Some(h.key.as_bytes())));
    // SAFETY: as in `string_column`: whole `str`s laid end to end.
    let keys = unsafe { StringArray::new_unchecked(key_offsets, key_values, None) };
    let (offsets, values, nulls) = concatenated(headers.iter().map(|h| h.value));
    let values = BinaryArray::new(offsets, values, nulls);
    let entries = StructArray::new(
        header_fields(),
        vec![Arc::new(keys) as ArrayRef, Arc::new(values)],
        None,
    );
    ListArray::new(field, list_offsets, Arc::new(entries), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, TimestampType};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use proptest::prelude::*;

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

    /// A record from generated parts: `(source, timestamp, key, value, headers)`.
    type RecordParts = (
        u32,
        Option<i64>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn record_parts() -> impl Strategy<Value = RecordParts> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20));
        (
            0u32..2,
            proptest::option::of(-5i64..2_000_000_000_000),
            bytes(),
            bytes(),
            proptest::collection::vec(("\\PC{0,6}", bytes()), 0..3),
        )
    }

    proptest! {
        // The columnwise build gives, row by row, each record's fields: the same batch as
        // appending every record to Arrow's builders would.
        #[test]
        fn test_columnwise_batch_matches_the_records(
            parts in proptest::collection::vec(record_parts(), 0..40)
        ) {
            let records: Vec<Record> = parts
                .iter()
                .enumerate()
                .map(|(offset, (source, timestamp, key, value, headers))| {
                    Record::new(
                        *source,
                        offset as i64,
                        *timestamp,
                        timestamp.map(|_| TimestampType::CreateTime),
                        key.clone().map(Into::into),
                        value.clone().map(Into::into),
                        headers
                            .iter()
                            .map(|(key, value)| Header {
                                key: key.clone(),
                                value: value.clone().map(Into::into),
                            })
                            .collect(),
                    )
                })
                .collect();
            let ranges = ranges();
            let batch = records_to_batch(&ranges, &records);
            batch.columns().iter().for_each(|c| c.to_data().validate_full().unwrap());
            let topic = batch.column(0).as_string::<i32>();
            let partition = batch.column(1).as_primitive::<Int32Type>();
            let offset = batch.column(2).as_primitive::<Int64Type>();
            let timestamp = batch.column(3).as_primitive::<TimestampMillisecondType>();
            let kind = batch.column(4).as_string::<i32>();
            let key = batch.column(5).as_binary::<i32>();
            let value = batch.column(6).as_binary::<i32>();
            let headers = batch.column(7).as_list::<i32>();
            prop_assert_eq!(batch.num_rows(), parts.len());
            for (row, (source, stamp, k, v, h)) in parts.iter().enumerate() {
                let range = &ranges[*source as usize];
                prop_assert_eq!(topic.value(row), range.topic.as_str());
                prop_assert_eq!(partition.value(row), range.partition);
                prop_assert_eq!(offset.value(row), row as i64);
                prop_assert_eq!(timestamp.is_valid(row).then(|| timestamp.value(row)), *stamp);
                prop_assert_eq!(
                    kind.is_valid(row).then(|| kind.value(row)),
                    stamp.map(|_| "CreateTime")
                );
                prop_assert_eq!(key.is_valid(row).then(|| key.value(row)), k.as_deref());
                prop_assert_eq!(value.is_valid(row).then(|| value.value(row)), v.as_deref());
                let entries = headers.value(row);
                let entries = entries.as_struct();
                let names = entries.column(0).as_string::<i32>();
                let contents = entries.column(1).as_binary::<i32>();
                let got: Vec<(String, Option<Vec<u8>>)> = (0..entries.len())
                    .map(|i| {
                        (
                            names.value(i).to_owned(),
                            contents.is_valid(i).then(|| contents.value(i).to_vec()),
                        )
                    })
                    .collect();
                prop_assert_eq!(&got, h);
            }
        }
    }

    #[test]
    fn test_batch_empty_has_schema() {
        let batch = records_to_batch(&ranges(), &[]);
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), schema());
    }
}
