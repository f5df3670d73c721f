//! Arrow arrays into DuckDB vectors: the one place that decides what an Arrow type is in SQL
//! and writes its values.
//!
//! Decoded payloads (Avro, Protobuf, JSON) arrive from `kafkars_core` as Arrow arrays; a
//! [`ColumnWriter`], planned once per column at bind, declares the column's DuckDB type and
//! then writes each chunk's slice of the column straight into the output vector. The stable C
//! API has no Arrow import (`duckdb_data_chunk_from_arrow` is in an unstable group that pins
//! one DuckDB version), so nested values go through the vector API: struct children, list
//! entries over a reserved child, MAP as a list of `STRUCT(key, value)`, UNION as a struct
//! whose child 0 is the tag.
//!
//! ```text
//! bind:  let writer = ColumnWriter::try_new(&field)?;      // error names the field path
//!        Column::new(field.name().clone(), writer.logical_type())
//! scan:  writer.write(&array.slice(row, n), output.vector(i))?;   // n <= 2048
//! ```
//!
//! `kafkars_arrow_ipc(data BLOB)` (see `diagnostic_functions`) runs exactly this on an Arrow
//! IPC stream, which is how the writer is tested against DuckDB's own Arrow reader.
//!
//! # Types
//!
//! | Arrow | DuckDB |
//! |---|---|
//! | Null | `"NULL"` (SQLNULL) |
//! | Boolean, Int8–64, UInt8–64, Float32/64 | BOOLEAN, TINYINT … BIGINT, UTINYINT … UBIGINT, FLOAT, DOUBLE |
//! | Float16 | FLOAT |
//! | Utf8, LargeUtf8, Utf8View | VARCHAR |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | BLOB |
//! | FixedSizeBinary(16) with `ARROW:extension:name = arrow.uuid` | UUID |
//! | Date32, Date64 | DATE (Date64 truncated to whole days) |
//! | Time32, Time64 | TIME (microseconds; nanoseconds truncated) |
//! | Timestamp(s/ms/µs, None) | TIMESTAMP (microseconds) |
//! | Timestamp(ns, None) | TIMESTAMP_NS |
//! | Timestamp(any unit, Some(tz)) | TIMESTAMP WITH TIME ZONE (µs; ns truncated) |
//! | Decimal32/64/128/256 with precision ≤ 38, scale 0 ..= precision | DECIMAL(p, s) |
//! | Interval(YearMonth/DayTime/MonthDayNano), Duration(any) | INTERVAL |
//! | Dictionary(integer, V) | V's type, decoded |
//! | Struct (≥ 1 field) | STRUCT |
//! | List, LargeList, FixedSizeList | LIST |
//! | Map | MAP |
//! | Union (dense or sparse) | UNION, members named after the union's fields |
//!
//! Anything else (Decimal with precision > 38 or a negative scale, ListView, RunEndEncoded,
//! an empty Struct or Union, field or member names that repeat ignoring case, MAP keys that
//! are not strings, binaries or fixed-width values) is refused when planning, by an error
//! naming the field's path (`value.items.price`). Conversions truncate towards zero, as
//! DuckDB's own casts do; a value that does not fit DuckDB's type (a timestamp in seconds
//! beyond year 294247, a decimal wider than its storage) is an error, as is a MAP with a NULL
//! or a repeated key (DuckDB's MAP guarantees neither exists).
//!
//! NULLs: a NULL struct row makes every field below it NULL too (so `s.x` is NULL there), a
//! union row is NULL, tag included, when its selected member is, and every member but the
//! selected one is NULL; a NULL list row is an empty entry.
//!
//! Where DuckDB's own Arrow reader differs (it refuses Float16, Decimal256 and dense unions,
//! reads timestamp[s] as TIMESTAMP_S, FixedSizeList as ARRAY, …), kafkars picks the type SQL
//! functions expect; `python/tests/test_arrow_writer.py` lists each case.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    IntervalDayTimeType, IntervalMonthDayNanoType, IntervalYearMonthType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BinaryViewArray, BooleanArray,
    FixedSizeBinaryArray, LargeBinaryArray, LargeStringArray, StringArray, StringViewArray,
    UInt32Array,
};
use arrow_buffer::{ArrowNativeType, BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, IntervalUnit, TimeUnit};

use crate::capi::{DataChunk, LogicalType, Vector};

/// The metadata key and value Arrow's canonical UUID extension type puts on its field.
const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
const UUID_EXTENSION: &str = "arrow.uuid";

/// DuckDB's limits: DECIMAL width and UNION members.
const MAX_DECIMAL_WIDTH: u8 = 38;
const MAX_UNION_MEMBERS: usize = 256;

/// Writes one column's Arrow arrays into DuckDB vectors of the column's type.
///
/// Planned once (at bind) from the column's Arrow field, then used for every chunk. It holds
/// no DuckDB object, so it can live in bind data shared by the scan's threads.
pub struct ColumnWriter {
    data_type: DataType,
    node: Node,
}

impl ColumnWriter {
    /// Plan the column `field`: check every nested type has a DuckDB type.
    ///
    /// The error names the path of the first field that has none and why, e.g.
    /// `value.items.price: Decimal256(60, 2) has no DuckDB type (DECIMAL precision is at
    /// most 38)`.
    pub fn try_new(field: &Field) -> Result<Self, String> {
        Ok(Self {
            data_type: field.data_type().clone(),
            node: Node::plan(field, field.name().clone())?,
        })
    }

    /// The column's DuckDB type.
    ///
    /// # Panics
    /// Outside a loaded extension (the C API is not initialised).
    pub fn logical_type(&self) -> LogicalType {
        self.node.logical_type()
    }

    /// The DuckDB type as SQL spells it, e.g. `STRUCT(a INTEGER, b VARCHAR[])` (names are not
    /// quoted): the mapping, testable without DuckDB.
    #[cfg(test)]
    fn sql_type(&self) -> String {
        self.node.sql_type()
    }

    /// Write rows `0..array.len()` of `array` into rows `0..` of `vector`.
    ///
    /// - `array` must have the planned field's type (field names and metadata may differ),
    ///   else an error;
    /// - at most one chunk: `array.len() <= 2048`, else an error;
    /// - `vector` must be an output vector of [`ColumnWriter::logical_type`], freshly reset
    ///   for this chunk (DuckDB resets output chunks between scan calls);
    /// - a value DuckDB's type cannot hold is an error naming the path.
    ///
    /// Sliced arrays (a non-zero offset) are fine. The caller sets the chunk's length.
    pub fn write(&self, array: &dyn Array, vector: Vector) -> Result<(), String> {
        if !array.data_type().equals_datatype(&self.data_type) {
            return Err(format!(
                "{}: expected an array of {}, found {}",
                self.node.path,
                self.data_type,
                array.data_type()
            ));
        }
        let capacity = DataChunk::capacity();
        if array.len() > capacity {
            return Err(format!(
                "{}: {} rows do not fit one chunk of {capacity}",
                self.node.path,
                array.len()
            ));
        }
        self.node.write(array, vector, 0, None)
    }
}

/// One level of a column's type: what it becomes in DuckDB and how its values get there.
struct Node {
    /// Where it lies in the column, for messages: `value.items.price`. List elements and
    /// dictionary values share their parent's path; struct fields, map keys and values and
    /// union members add their name.
    path: String,
    kind: Kind,
}

enum Kind {
    /// Every row NULL.
    Null,
    /// Arrow's bits become DuckDB's bytes.
    Boolean,
    /// Arrow and DuckDB lay the values out alike: copied as they are.
    Copy(Primitive),
    /// Values converted one by one.
    Convert(Conversion),
    /// DECIMAL(width, scale), stored as i16/i32/i64/i128 by width.
    Decimal {
        width: u8,
        scale: u8,
    },
    /// VARCHAR (`text`) or BLOB, from any string or binary array.
    Bytes {
        text: bool,
    },
    /// 16 big-endian bytes into DuckDB's UUID (a hugeint with the top bit flipped).
    Uuid,
    /// The decoded values of a dictionary.
    Dictionary(Box<Node>),
    Struct(Vec<(String, Node)>),
    List(Box<Node>),
    Map {
        key: Box<Node>,
        value: Box<Node>,
    },
    /// Members in the union's field order; `tags[type_id]` is a member's index (its DuckDB
    /// tag), `NO_TAG` for ids the union does not use.
    Union {
        members: Vec<(String, Node)>,
        type_ids: Vec<i8>,
        tags: Box<[u8; 128]>,
    },
}

const NO_TAG: u8 = u8::MAX;

/// Fixed-width types copied without conversion.
#[derive(Clone, Copy)]
enum Primitive {
    TinyInt,
    SmallInt,
    Integer,
    BigInt,
    UTinyInt,
    USmallInt,
    UInteger,
    UBigInt,
    Float,
    Double,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    TimestampNs,
}

/// Values converted on the way, each with its DuckDB type.
#[derive(Clone, Copy)]
enum Conversion {
    /// Float16 → FLOAT.
    HalfFloat,
    /// Date64 (milliseconds) → DATE (days).
    DateMillis,
    /// Time32/Time64 in seconds, milliseconds or nanoseconds → TIME (microseconds).
    Time(TimeUnit),
    /// Timestamp in seconds, milliseconds or (with a time zone) nanoseconds → TIMESTAMP or
    /// TIMESTAMPTZ (microseconds).
    Timestamp { unit: TimeUnit, zoned: bool },
    /// Duration → INTERVAL (microseconds only, no days or months).
    Duration(TimeUnit),
    /// Interval → INTERVAL.
    Interval(IntervalUnit),
}

/// DuckDB's INTERVAL in memory (`duckdb_interval`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Interval {
    months: i32,
    days: i32,
    micros: i64,
}

/// DuckDB's LIST entry in memory (`duckdb_list_entry`).
#[repr(C)]
#[derive(Clone, Copy)]
struct ListEntry {
    offset: u64,
    length: u64,
}

fn no_duckdb_type(path: &str, data_type: &DataType, reason: &str) -> String {
    format!("{path}: {data_type} has no DuckDB type ({reason})")
}

/// Child names must be non-empty and unique ignoring case: DuckDB resolves `s.name`
/// without case, so `id` and `ID` could not both be reached (and its SQL refuses such types).
fn check_names<'a>(
    path: &str,
    data_type: &DataType,
    what: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if name.is_empty() {
            return Err(no_duckdb_type(
                path,
                data_type,
                &format!("a {what} has an empty name"),
            ));
        }
        if let Some(other) = seen.iter().find(|seen| seen.eq_ignore_ascii_case(name)) {
            return Err(no_duckdb_type(
                path,
                data_type,
                &format!("{what} names must be unique ignoring case; found '{other}' and '{name}'"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

impl Node {
    fn plan(field: &Field, path: String) -> Result<Node, String> {
        let data_type = field.data_type();
        let unsupported = |reason: &str| Err(no_duckdb_type(&path, data_type, reason));
        let kind = match data_type {
            DataType::Null => Kind::Null,
            DataType::Boolean => Kind::Boolean,
            DataType::Int8 => Kind::Copy(Primitive::TinyInt),
            DataType::Int16 => Kind::Copy(Primitive::SmallInt),
            DataType::Int32 => Kind::Copy(Primitive::Integer),
            DataType::Int64 => Kind::Copy(Primitive::BigInt),
            DataType::UInt8 => Kind::Copy(Primitive::UTinyInt),
            DataType::UInt16 => Kind::Copy(Primitive::USmallInt),
            DataType::UInt32 => Kind::Copy(Primitive::UInteger),
            DataType::UInt64 => Kind::Copy(Primitive::UBigInt),
            DataType::Float16 => Kind::Convert(Conversion::HalfFloat),
            DataType::Float32 => Kind::Copy(Primitive::Float),
            DataType::Float64 => Kind::Copy(Primitive::Double),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Bytes { text: true },
            DataType::FixedSizeBinary(16)
                if field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str)
                    == Some(UUID_EXTENSION) =>
            {
                Kind::Uuid
            }
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => Kind::Bytes { text: false },
            DataType::Date32 => Kind::Copy(Primitive::Date),
            DataType::Date64 => Kind::Convert(Conversion::DateMillis),
            DataType::Time32(unit @ (TimeUnit::Second | TimeUnit::Millisecond))
            | DataType::Time64(unit @ TimeUnit::Nanosecond) => {
                Kind::Convert(Conversion::Time(*unit))
            }
            DataType::Time64(TimeUnit::Microsecond) => Kind::Copy(Primitive::Time),
            DataType::Time32(_) | DataType::Time64(_) => {
                return unsupported(
                    "Time32 holds seconds or milliseconds, Time64 micro- or nanoseconds",
                );
            }
            DataType::Timestamp(unit, zone) => match (unit, zone.is_some()) {
                (TimeUnit::Microsecond, false) => Kind::Copy(Primitive::Timestamp),
                (TimeUnit::Microsecond, true) => Kind::Copy(Primitive::TimestampTz),
                (TimeUnit::Nanosecond, false) => Kind::Copy(Primitive::TimestampNs),
                (unit, zoned) => Kind::Convert(Conversion::Timestamp { unit: *unit, zoned }),
            },
            DataType::Duration(unit) => Kind::Convert(Conversion::Duration(*unit)),
            DataType::Interval(unit) => Kind::Convert(Conversion::Interval(*unit)),
            DataType::Decimal32(precision, scale)
            | DataType::Decimal64(precision, scale)
            | DataType::Decimal128(precision, scale)
            | DataType::Decimal256(precision, scale) => {
                if *precision > MAX_DECIMAL_WIDTH {
                    return unsupported("DECIMAL precision is at most 38");
                }
                if *scale < 0 {
                    return unsupported("DECIMAL scale cannot be negative");
                }
                if *precision == 0 || *scale as u8 > *precision {
                    return unsupported("DECIMAL needs 1 <= precision and scale <= precision");
                }
                Kind::Decimal {
                    width: *precision,
                    scale: *scale as u8,
                }
            }
            DataType::Dictionary(key, values) => {
                if !key.is_integer() {
                    return unsupported("dictionary keys must be integers");
                }
                let values = Field::new(field.name(), values.as_ref().clone(), true);
                Kind::Dictionary(Box::new(Node::plan(&values, path.clone())?))
            }
            DataType::Struct(fields) => {
                if fields.is_empty() {
                    return unsupported("a STRUCT needs at least one field");
                }
                check_names(
                    &path,
                    data_type,
                    "field",
                    fields.iter().map(|f| f.name().as_str()),
                )?;
                let children = fields
                    .iter()
                    .map(|child| {
                        let node = Node::plan(child, format!("{path}.{}", child.name()))?;
                        Ok((child.name().clone(), node))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Kind::Struct(children)
            }
            DataType::List(element)
            | DataType::LargeList(element)
            | DataType::FixedSizeList(element, _) => {
                Kind::List(Box::new(Node::plan(element, path.clone())?))
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(pair) = entries.data_type() else {
                    return unsupported("MAP entries must be a STRUCT");
                };
                let [key, value] = pair.iter().collect::<Vec<_>>()[..] else {
                    return unsupported("MAP entries must have two fields, key and value");
                };
                if !MapKeys::supports(key.data_type()) {
                    return Err(no_duckdb_type(
                        &path,
                        data_type,
                        &format!(
                            "MAP keys of type {} are not supported; keys must be strings, \
                             binary or fixed-width values",
                            key.data_type()
                        ),
                    ));
                }
                Kind::Map {
                    key: Box::new(Node::plan(key, format!("{path}.{}", key.name()))?),
                    value: Box::new(Node::plan(value, format!("{path}.{}", value.name()))?),
                }
            }
            DataType::Union(fields, _) => {
                if fields.is_empty() {
                    return unsupported("a UNION needs at least one member");
                }
                if fields.len() > MAX_UNION_MEMBERS {
                    return unsupported("a UNION has at most 256 members");
                }
                check_names(
                    &path,
                    data_type,
                    "member",
                    fields.iter().map(|(_, f)| f.name().as_str()),
                )?;
                let mut tags = Box::new([NO_TAG; 128]);
                let mut members = Vec::with_capacity(fields.len());
                let mut type_ids = Vec::with_capacity(fields.len());
                for (index, (type_id, member)) in fields.iter().enumerate() {
                    let Ok(slot) = usize::try_from(type_id) else {
                        return unsupported("union type ids must be 0 to 127");
                    };
                    tags[slot] = index as u8;
                    type_ids.push(type_id);
                    let node = Node::plan(member, format!("{path}.{}", member.name()))?;
                    members.push((member.name().clone(), node));
                }
                Kind::Union {
                    members,
                    type_ids,
                    tags,
                }
            }
            DataType::ListView(_) | DataType::LargeListView(_) => {
                return unsupported("list views are not supported; use List");
            }
            DataType::RunEndEncoded(_, _) => {
                return unsupported("run-end encoding is not supported");
            }
        };
        Ok(Node { path, kind })
    }

    fn logical_type(&self) -> LogicalType {
        match &self.kind {
            Kind::Null => LogicalType::sqlnull(),
            Kind::Boolean => LogicalType::boolean(),
            Kind::Copy(primitive) => match primitive {
                Primitive::TinyInt => LogicalType::tinyint(),
                Primitive::SmallInt => LogicalType::smallint(),
                Primitive::Integer => LogicalType::integer(),
                Primitive::BigInt => LogicalType::bigint(),
                Primitive::UTinyInt => LogicalType::utinyint(),
                Primitive::USmallInt => LogicalType::usmallint(),
                Primitive::UInteger => LogicalType::uinteger(),
                Primitive::UBigInt => LogicalType::ubigint(),
                Primitive::Float => LogicalType::float(),
                Primitive::Double => LogicalType::double(),
                Primitive::Date => LogicalType::date(),
                Primitive::Time => LogicalType::time(),
                Primitive::Timestamp => LogicalType::timestamp(),
                Primitive::TimestampTz => LogicalType::timestamp_tz(),
                Primitive::TimestampNs => LogicalType::timestamp_ns(),
            },
            Kind::Convert(conversion) => match conversion {
                Conversion::HalfFloat => LogicalType::float(),
                Conversion::DateMillis => LogicalType::date(),
                Conversion::Time(_) => LogicalType::time(),
                Conversion::Timestamp { zoned: false, .. } => LogicalType::timestamp(),
                Conversion::Timestamp { zoned: true, .. } => LogicalType::timestamp_tz(),
                Conversion::Duration(_) | Conversion::Interval(_) => LogicalType::interval(),
            },
            Kind::Decimal { width, scale } => LogicalType::decimal(*width, *scale),
            Kind::Bytes { text: true } => LogicalType::varchar(),
            Kind::Bytes { text: false } => LogicalType::blob(),
            Kind::Uuid => LogicalType::uuid(),
            Kind::Dictionary(values) => values.logical_type(),
            Kind::Struct(children) => {
                let fields: Vec<(&str, LogicalType)> = children
                    .iter()
                    .map(|(name, node)| (name.as_str(), node.logical_type()))
                    .collect();
                LogicalType::structure(&fields)
            }
            Kind::List(element) => LogicalType::list(&element.logical_type()),
            Kind::Map { key, value } => {
                LogicalType::map(&key.logical_type(), &value.logical_type())
            }
            Kind::Union { members, .. } => {
                let members: Vec<(&str, LogicalType)> = members
                    .iter()
                    .map(|(name, node)| (name.as_str(), node.logical_type()))
                    .collect();
                LogicalType::union(&members)
            }
        }
    }

    #[cfg(test)]
    fn sql_type(&self) -> String {
        let named = |children: &[(String, Node)]| {
            children
                .iter()
                .map(|(name, node)| format!("{name} {}", node.sql_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.kind {
            Kind::Null => "\"NULL\"".into(),
            Kind::Boolean => "BOOLEAN".into(),
            Kind::Copy(primitive) => match primitive {
                Primitive::TinyInt => "TINYINT",
                Primitive::SmallInt => "SMALLINT",
                Primitive::Integer => "INTEGER",
                Primitive::BigInt => "BIGINT",
                Primitive::UTinyInt => "UTINYINT",
                Primitive::USmallInt => "USMALLINT",
                Primitive::UInteger => "UINTEGER",
                Primitive::UBigInt => "UBIGINT",
                Primitive::Float => "FLOAT",
                Primitive::Double => "DOUBLE",
                Primitive::Date => "DATE",
                Primitive::Time => "TIME",
                Primitive::Timestamp => "TIMESTAMP",
                Primitive::TimestampTz => "TIMESTAMP WITH TIME ZONE",
                Primitive::TimestampNs => "TIMESTAMP_NS",
            }
            .into(),
            Kind::Convert(conversion) => match conversion {
                Conversion::HalfFloat => "FLOAT",
                Conversion::DateMillis => "DATE",
                Conversion::Time(_) => "TIME",
                Conversion::Timestamp { zoned: false, .. } => "TIMESTAMP",
                Conversion::Timestamp { zoned: true, .. } => "TIMESTAMP WITH TIME ZONE",
                Conversion::Duration(_) | Conversion::Interval(_) => "INTERVAL",
            }
            .into(),
            Kind::Decimal { width, scale } => format!("DECIMAL({width},{scale})"),
            Kind::Bytes { text: true } => "VARCHAR".into(),
            Kind::Bytes { text: false } => "BLOB".into(),
            Kind::Uuid => "UUID".into(),
            Kind::Dictionary(values) => values.sql_type(),
            Kind::Struct(children) => format!("STRUCT({})", named(children)),
            Kind::List(element) => format!("{}[]", element.sql_type()),
            Kind::Map { key, value } => format!("MAP({}, {})", key.sql_type(), value.sql_type()),
            Kind::Union { members, .. } => format!("UNION({})", named(members)),
        }
    }

    /// Write rows `0..array.len()` of `array` into rows `at..` of `vector`; a row NULL in
    /// `parent` (the enclosing struct's or union's validity, aligned with `array`) is NULL
    /// here too, whatever `array` holds there.
    fn write(
        &self,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        parent: Option<&NullBuffer>,
    ) -> Result<(), String> {
        let len = array.len();
        match &self.kind {
            Kind::Null => {
                let validity = vector.validity();
                for row in at..at + len {
                    // SAFETY: rows below at + len lie within the vector (see write's callers).
                    unsafe { validity.set_invalid(row) };
                }
                Ok(())
            }
            Kind::Dictionary(values) => self.write_dictionary(values, array, vector, at, parent),
            Kind::Union {
                members,
                type_ids,
                tags,
            } => self.write_union(members, type_ids, tags, array, vector, at, parent),
            _ => {
                let nulls = NullBuffer::union(array.nulls(), parent);
                self.write_values(array, vector, at, nulls.as_ref())?;
                mark_nulls(vector, at, nulls.as_ref());
                Ok(())
            }
        }
    }

    /// Everything but NULL, dictionaries and unions: the values, with `nulls` the rows that
    /// end NULL (values there are skipped where converting them could fail).
    fn write_values(
        &self,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        nulls: Option<&NullBuffer>,
    ) -> Result<(), String> {
        // SAFETY (the unsafe blocks below): the vector was created for this node's logical
        // type, so its physical type is the one written; rows at..at + len lie within it.
        match &self.kind {
            Kind::Boolean => {
                let data = unsafe { vector.data::<u8>() };
                for (row, value) in array.as_boolean().values().iter().enumerate() {
                    unsafe { data.add(at + row).write(u8::from(value)) };
                }
                Ok(())
            }
            Kind::Copy(_) => {
                unsafe { copy_primitive(array, vector, at) };
                Ok(())
            }
            Kind::Convert(conversion) => unsafe {
                self.convert(*conversion, array, vector, at, nulls)
            },
            Kind::Decimal { width, .. } => unsafe {
                self.write_decimal(*width, array, vector, at, nulls)
            },
            Kind::Bytes { .. } => {
                let bytes = ByteValues::of(array)
                    .ok_or_else(|| format!("{}: not a string array", self.path))?;
                for row in 0..array.len() {
                    if nulls.is_none_or(|nulls| nulls.is_valid(row)) {
                        vector.set_bytes(at + row, bytes.value(row));
                    }
                }
                Ok(())
            }
            Kind::Uuid => {
                let data = unsafe { vector.data::<[u64; 2]>() };
                let uuids = array.as_fixed_size_binary();
                for row in 0..array.len() {
                    let value = uuids.value(row);
                    let (high, low) = value.split_at(8);
                    let high = u64::from_be_bytes(high.try_into().unwrap_or_default());
                    let low = u64::from_be_bytes(low.try_into().unwrap_or_default());
                    // A hugeint {lower, upper}, the top bit flipped so that signed order is
                    // the UUIDs' byte order.
                    unsafe { data.add(at + row).write_unaligned([low, high ^ (1 << 63)]) };
                }
                Ok(())
            }
            Kind::Struct(children) => {
                let fields = array.as_struct();
                for (index, (_, child)) in children.iter().enumerate() {
                    child.write(
                        fields.column(index).as_ref(),
                        vector.struct_field(index),
                        at,
                        nulls,
                    )?;
                }
                Ok(())
            }
            Kind::List(element) => match array.data_type() {
                DataType::List(_) => {
                    let list = array.as_list::<i32>();
                    write_list(
                        element,
                        list.value_offsets(),
                        list.values(),
                        vector,
                        at,
                        nulls,
                    )
                }
                DataType::LargeList(_) => {
                    let list = array.as_list::<i64>();
                    write_list(
                        element,
                        list.value_offsets(),
                        list.values(),
                        vector,
                        at,
                        nulls,
                    )
                }
                DataType::FixedSizeList(_, size) => {
                    let list = array.as_fixed_size_list();
                    let size = *size as usize;
                    let offsets: Vec<i64> = (0..=array.len()).map(|i| (i * size) as i64).collect();
                    write_list(element, &offsets, list.values(), vector, at, nulls)
                }
                other => Err(format!("{}: expected a list, found {other}", self.path)),
            },
            Kind::Map { key, value } => self.write_map(key, value, array, vector, at, nulls),
            Kind::Null | Kind::Dictionary(_) | Kind::Union { .. } => {
                unreachable!("written by Node::write")
            }
        }
    }

    /// # Safety
    /// `vector` has this node's type, with rows `at..at + array.len()`.
    unsafe fn convert(
        &self,
        conversion: Conversion,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        nulls: Option<&NullBuffer>,
    ) -> Result<(), String> {
        const MICROS_PER_SECOND: i64 = 1_000_000;
        const MILLIS_PER_DAY: i64 = 86_400_000;
        let out_of_range = |value: i64, unit: &str, target: &str| {
            format!(
                "{}: {value} {unit} is out of range for DuckDB's {target}",
                self.path
            )
        };
        let micros = |unit: TimeUnit| match unit {
            TimeUnit::Second => MICROS_PER_SECOND,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond | TimeUnit::Nanosecond => 1,
        };
        match conversion {
            Conversion::HalfFloat => {
                map_values(array.as_primitive::<Float16Type>(), vector, at, |v| {
                    v.to_f32()
                });
            }
            Conversion::DateMillis => {
                map_values(array.as_primitive::<Date64Type>(), vector, at, |v| {
                    (v / MILLIS_PER_DAY) as i32
                });
            }
            Conversion::Time(unit) => match unit {
                TimeUnit::Second => {
                    map_values(array.as_primitive::<Time32SecondType>(), vector, at, |v| {
                        i64::from(v) * MICROS_PER_SECOND
                    })
                }
                TimeUnit::Millisecond => map_values(
                    array.as_primitive::<Time32MillisecondType>(),
                    vector,
                    at,
                    |v| i64::from(v) * 1_000,
                ),
                TimeUnit::Microsecond => map_values(
                    array.as_primitive::<Time64MicrosecondType>(),
                    vector,
                    at,
                    |v| v,
                ),
                TimeUnit::Nanosecond => map_values(
                    array.as_primitive::<Time64NanosecondType>(),
                    vector,
                    at,
                    |v| v / 1_000,
                ),
            },
            Conversion::Timestamp { unit, zoned } => {
                let target = if zoned { "TIMESTAMPTZ" } else { "TIMESTAMP" };
                match unit {
                    TimeUnit::Second => try_map_values(
                        array.as_primitive::<TimestampSecondType>(),
                        vector,
                        at,
                        nulls,
                        |v| v.checked_mul(MICROS_PER_SECOND),
                        |v| out_of_range(v, "s", target),
                    )?,
                    TimeUnit::Millisecond => try_map_values(
                        array.as_primitive::<TimestampMillisecondType>(),
                        vector,
                        at,
                        nulls,
                        |v| v.checked_mul(1_000),
                        |v| out_of_range(v, "ms", target),
                    )?,
                    TimeUnit::Microsecond => copy_primitive(array, vector, at),
                    TimeUnit::Nanosecond => map_values(
                        array.as_primitive::<TimestampNanosecondType>(),
                        vector,
                        at,
                        |v| v / 1_000,
                    ),
                }
            }
            Conversion::Duration(unit) => {
                let interval = |micros: i64| Interval {
                    months: 0,
                    days: 0,
                    micros,
                };
                match unit {
                    TimeUnit::Second | TimeUnit::Millisecond => {
                        let (values, name) = if unit == TimeUnit::Second {
                            (array.as_primitive::<DurationSecondType>().values(), "s")
                        } else {
                            (
                                array.as_primitive::<DurationMillisecondType>().values(),
                                "ms",
                            )
                        };
                        let scale = micros(unit);
                        try_map_slice(
                            values,
                            vector,
                            at,
                            nulls,
                            |v| v.checked_mul(scale).map(interval),
                            |v| out_of_range(v, &format!("{name} (a duration)"), "INTERVAL"),
                        )?
                    }
                    TimeUnit::Microsecond => map_values(
                        array.as_primitive::<DurationMicrosecondType>(),
                        vector,
                        at,
                        interval,
                    ),
                    TimeUnit::Nanosecond => map_values(
                        array.as_primitive::<DurationNanosecondType>(),
                        vector,
                        at,
                        |v| interval(v / 1_000),
                    ),
                }
            }
            Conversion::Interval(unit) => match unit {
                IntervalUnit::YearMonth => map_values(
                    array.as_primitive::<IntervalYearMonthType>(),
                    vector,
                    at,
                    |v| Interval {
                        months: v,
                        days: 0,
                        micros: 0,
                    },
                ),
                IntervalUnit::DayTime => map_values(
                    array.as_primitive::<IntervalDayTimeType>(),
                    vector,
                    at,
                    |v| Interval {
                        months: 0,
                        days: v.days,
                        micros: i64::from(v.milliseconds) * 1_000,
                    },
                ),
                IntervalUnit::MonthDayNano => map_values(
                    array.as_primitive::<IntervalMonthDayNanoType>(),
                    vector,
                    at,
                    |v| Interval {
                        months: v.months,
                        days: v.days,
                        micros: v.nanoseconds / 1_000,
                    },
                ),
            },
        }
        Ok(())
    }

    /// DuckDB stores DECIMAL(w, s) as i16 (w ≤ 4), i32 (≤ 9), i64 (≤ 18) or i128 (≤ 38).
    ///
    /// # Safety
    /// `vector` has this node's type, with rows `at..at + array.len()`.
    unsafe fn write_decimal(
        &self,
        width: u8,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        nulls: Option<&NullBuffer>,
    ) -> Result<(), String> {
        let too_wide = |value: Option<i128>| match value {
            Some(value) => format!(
                "{}: the unscaled decimal value {value} does not fit DECIMAL({width})",
                self.path
            ),
            None => format!(
                "{}: a decimal value does not fit DECIMAL({width})",
                self.path
            ),
        };
        match (array.data_type(), width) {
            // Same storage width: copied as they are.
            (DataType::Decimal32(..), 5..=9)
            | (DataType::Decimal64(..), 10..=18)
            | (DataType::Decimal128(..), 19..=38) => copy_primitive(array, vector, at),
            (DataType::Decimal32(..), _) => narrow(
                array.as_primitive::<Decimal32Type>(),
                width,
                vector,
                at,
                nulls,
                |v| Some(i128::from(v)),
            )
            .map_err(too_wide)?,
            (DataType::Decimal64(..), _) => narrow(
                array.as_primitive::<Decimal64Type>(),
                width,
                vector,
                at,
                nulls,
                |v| Some(i128::from(v)),
            )
            .map_err(too_wide)?,
            (DataType::Decimal128(..), _) => narrow(
                array.as_primitive::<Decimal128Type>(),
                width,
                vector,
                at,
                nulls,
                Some,
            )
            .map_err(too_wide)?,
            (DataType::Decimal256(..), _) => narrow(
                array.as_primitive::<Decimal256Type>(),
                width,
                vector,
                at,
                nulls,
                |v| v.to_i128(),
            )
            .map_err(too_wide)?,
            (other, _) => return Err(format!("{}: expected a decimal, found {other}", self.path)),
        }
        Ok(())
    }

    fn write_dictionary(
        &self,
        values_node: &Node,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        parent: Option<&NullBuffer>,
    ) -> Result<(), String> {
        let dictionary = array
            .as_any_dictionary_opt()
            .ok_or_else(|| format!("{}: expected a dictionary", self.path))?;
        let values = dictionary.values();
        let keys = NullBuffer::union(dictionary.keys().nulls(), parent);
        if values.is_empty() {
            // Only NULL keys can point into no values.
            if keys
                .as_ref()
                .is_none_or(|keys| keys.null_count() < keys.len())
                && !array.is_empty()
            {
                return Err(format!(
                    "{}: a dictionary key points past its values",
                    self.path
                ));
            }
            let validity = vector.validity();
            for row in at..at + array.len() {
                // SAFETY: the row lies within the vector.
                unsafe { validity.set_invalid(row) };
            }
            return Ok(());
        }
        match (values_node.kind_is_bytes(), ByteValues::of(values.as_ref())) {
            (true, Some(bytes)) => {
                // Strings, the common case (Avro enums): no decoded copy.
                let indexes = dictionary.normalized_keys();
                let validity = vector.validity();
                for (row, &index) in indexes.iter().enumerate() {
                    let valid = keys.as_ref().is_none_or(|keys| keys.is_valid(row))
                        && values.is_valid(index);
                    if valid {
                        vector.set_bytes(at + row, bytes.value(index));
                    } else {
                        // SAFETY: the row lies within the vector.
                        unsafe { validity.set_invalid(at + row) };
                    }
                }
                Ok(())
            }
            _ => {
                // The keys, clamped into range: `take` checks even the keys of NULL rows.
                let keys = UInt32Array::new(
                    dictionary
                        .normalized_keys()
                        .into_iter()
                        .map(|key| key as u32)
                        .collect(),
                    dictionary.keys().nulls().cloned(),
                );
                let decoded = arrow_select::take::take(values.as_ref(), &keys, None)
                    .map_err(|e| format!("{}: decoding a dictionary: {e}", self.path))?;
                values_node.write(decoded.as_ref(), vector, at, parent)
            }
        }
    }

    fn kind_is_bytes(&self) -> bool {
        matches!(self.kind, Kind::Bytes { .. })
    }

    /// A UNION vector is a STRUCT whose child 0 holds the tag (the member's index) and child
    /// `1 + i` member `i`; a member is NULL on every row that selects another one.
    #[allow(clippy::too_many_arguments)]
    fn write_union(
        &self,
        members: &[(String, Node)],
        type_ids: &[i8],
        tags: &[u8; 128],
        array: &dyn Array,
        vector: Vector,
        at: usize,
        parent: Option<&NullBuffer>,
    ) -> Result<(), String> {
        let union = array.as_union();
        let len = union.len();
        let selected = union.type_ids();
        let tag_vector = vector.struct_field(0);
        // SAFETY: the tag child is UTINYINT, with rows at..at + len.
        let tag_data = unsafe { tag_vector.data::<u8>() };
        for (row, &type_id) in selected.iter().enumerate() {
            let tag = usize::try_from(type_id).map_or(NO_TAG, |slot| tags[slot]);
            if tag == NO_TAG {
                return Err(format!(
                    "{}: row {row} selects type id {type_id}, which the union does not have",
                    self.path
                ));
            }
            // SAFETY: as above.
            unsafe { tag_data.add(at + row).write(tag) };
        }
        // A row is NULL when the parent is or the selected member's value is.
        let mut valid: Vec<bool> = (0..len)
            .map(|row| parent.is_none_or(|parent| parent.is_valid(row)))
            .collect();
        for (index, ((_, member), &type_id)) in members.iter().zip(type_ids).enumerate() {
            let child = union.child(type_id);
            let member_vector = vector.struct_field(index + 1);
            let member_nulls = child.logical_nulls();
            match union.offsets() {
                Some(offsets) => {
                    // Dense: gather this member's values into union rows, NULL elsewhere.
                    let positions: UInt32Array = selected
                        .iter()
                        .zip(offsets.iter())
                        .map(|(&id, &offset)| (id == type_id).then_some(offset as u32))
                        .collect();
                    for (row, position) in positions.iter().enumerate() {
                        if let Some(position) = position {
                            valid[row] &= member_nulls
                                .as_ref()
                                .is_none_or(|nulls| nulls.is_valid(position as usize));
                        }
                    }
                    // `take` checks even the positions of rows that select another member.
                    let gathered = if child.is_empty() {
                        arrow_array::new_null_array(child.data_type(), len)
                    } else {
                        arrow_select::take::take(child.as_ref(), &positions, None)
                            .map_err(|e| format!("{}: reading a dense union: {e}", self.path))?
                    };
                    member.write(gathered.as_ref(), member_vector, at, parent)?;
                }
                None => {
                    // Sparse: the member's own rows, NULL where another member is selected.
                    let mine = NullBuffer::new(BooleanBuffer::collect_bool(len, |row| {
                        selected[row] == type_id
                    }));
                    for (row, &id) in selected.iter().enumerate() {
                        if id == type_id {
                            valid[row] &= member_nulls
                                .as_ref()
                                .is_none_or(|nulls| nulls.is_valid(row));
                        }
                    }
                    let mask = NullBuffer::union(Some(&mine), parent);
                    member.write(child.as_ref(), member_vector, at, mask.as_ref())?;
                }
            }
        }
        // The tag of a NULL row is NULL too (`union_tag` reads it), as in DuckDB's reader.
        let nulls = NullBuffer::from(valid);
        mark_nulls(vector, at, Some(&nulls));
        mark_nulls(tag_vector, at, Some(&nulls));
        Ok(())
    }

    /// A MAP vector is a LIST of STRUCT(key, value); DuckDB requires its keys non-NULL and
    /// unique per row, so both are checked on the rows that are not NULL.
    fn write_map(
        &self,
        key: &Node,
        value: &Node,
        array: &dyn Array,
        vector: Vector,
        at: usize,
        nulls: Option<&NullBuffer>,
    ) -> Result<(), String> {
        let map = array.as_map();
        let offsets = map.value_offsets();
        let start = offsets[0].as_usize();
        let count = offsets[map.len()].as_usize() - start;
        let keys = map.keys().slice(start, count);
        let key_values = MapKeys::of(keys.as_ref())
            .ok_or_else(|| format!("{}: unsupported MAP key type", self.path))?;
        let mut scratch = Vec::new();
        for row in 0..map.len() {
            if nulls.is_some_and(|nulls| nulls.is_null(row)) {
                continue;
            }
            let range = offsets[row].as_usize() - start..offsets[row + 1].as_usize() - start;
            if keys.null_count() > 0 && range.clone().any(|i| keys.is_null(i)) {
                return Err(format!("{}: a MAP key is NULL", key.path));
            }
            if let Some(i) = key_values.first_duplicate(range, &mut scratch) {
                return Err(format!(
                    "{}: MAP keys must be unique, found a repeated key ({})",
                    key.path,
                    key_values.describe(i)
                ));
            }
        }
        let entries_at = append_list_entries(vector, at, offsets, nulls);
        vector.list_reserve(entries_at + count);
        let entries = vector.list_child();
        key.write(keys.as_ref(), entries.struct_field(0), entries_at, None)?;
        let values = map.values().slice(start, count);
        value.write(values.as_ref(), entries.struct_field(1), entries_at, None)?;
        // SAFETY: reserved above.
        unsafe { vector.set_list_len(entries_at + count) };
        Ok(())
    }
}

/// Write list rows: each row's entry points into the child vector, where the elements of
/// all rows (`values[offsets[0]..offsets[len]]`) are appended in one piece after what it
/// already holds. A NULL row gets an empty entry.
fn write_list<O: ArrowNativeType>(
    element: &Node,
    offsets: &[O],
    values: &ArrayRef,
    vector: Vector,
    at: usize,
    nulls: Option<&NullBuffer>,
) -> Result<(), String> {
    let len = offsets.len() - 1;
    let start = offsets[0].as_usize();
    let count = offsets[len].as_usize() - start;
    let child_at = append_list_entries(vector, at, offsets, nulls);
    // The reserve may move the child's buffers: look the child up afterwards.
    vector.list_reserve(child_at + count);
    element.write(
        values.slice(start, count).as_ref(),
        vector.list_child(),
        child_at,
        None,
    )?;
    // SAFETY: reserved above.
    unsafe { vector.set_list_len(child_at + count) };
    Ok(())
}

/// Write the entries of list rows `at..` whose elements will be appended to the child from
/// its current length on; returns that length.
fn append_list_entries<O: ArrowNativeType>(
    vector: Vector,
    at: usize,
    offsets: &[O],
    nulls: Option<&NullBuffer>,
) -> usize {
    let base = vector.list_len();
    let start = offsets[0].as_usize();
    // SAFETY: a LIST vector's data are its entries, with rows at..at + len.
    let entries = unsafe { vector.data::<ListEntry>() };
    for (row, pair) in offsets.windows(2).enumerate() {
        let offset = (base + pair[0].as_usize() - start) as u64;
        let length = if nulls.is_some_and(|nulls| nulls.is_null(row)) {
            0
        } else {
            (pair[1].as_usize() - pair[0].as_usize()) as u64
        };
        // SAFETY: as above.
        unsafe { entries.add(at + row).write(ListEntry { offset, length }) };
    }
    base
}

/// Mark the rows NULL in `nulls` NULL in the vector (rows `at..`).
fn mark_nulls(vector: Vector, at: usize, nulls: Option<&NullBuffer>) {
    let Some(nulls) = nulls.filter(|nulls| nulls.null_count() > 0) else {
        return;
    };
    let validity = vector.validity();
    // SAFETY (both branches): rows at..at + nulls.len() lie within the vector.
    if at % 64 == 0 {
        // Word-aligned: Arrow's and DuckDB's masks share the bit order, AND whole words.
        let chunks = nulls.inner().bit_chunks();
        let first = at / 64;
        for (index, bits) in chunks.iter().enumerate() {
            unsafe { validity.and_word(first + index, bits) };
        }
        if chunks.remainder_len() > 0 {
            let bits = chunks.remainder_bits() | (u64::MAX << chunks.remainder_len());
            unsafe { validity.and_word(first + chunks.chunk_len(), bits) };
        }
    } else {
        for row in 0..nulls.len() {
            if nulls.is_null(row) {
                unsafe { validity.set_invalid(at + row) };
            }
        }
    }
}

/// Copy a primitive array's values as they are (same layout in DuckDB).
///
/// # Safety
/// `vector`'s physical type has the array's value width, with rows `at..at + array.len()`.
unsafe fn copy_primitive(array: &dyn Array, vector: Vector, at: usize) {
    unsafe fn copy<T: ArrowPrimitiveType>(array: &dyn Array, vector: Vector, at: usize) {
        let values = array.as_primitive::<T>().values();
        // Byte-wise: DuckDB's buffers need not be 16-byte aligned for i128.
        std::ptr::copy_nonoverlapping(
            values.as_ptr().cast::<u8>(),
            vector
                .data::<u8>()
                .add(at * std::mem::size_of::<T::Native>()),
            std::mem::size_of_val::<[T::Native]>(values),
        );
    }
    match array.data_type() {
        DataType::Int8 => copy::<Int8Type>(array, vector, at),
        DataType::Int16 => copy::<Int16Type>(array, vector, at),
        DataType::Int32 => copy::<Int32Type>(array, vector, at),
        DataType::Int64 => copy::<Int64Type>(array, vector, at),
        DataType::UInt8 => copy::<UInt8Type>(array, vector, at),
        DataType::UInt16 => copy::<UInt16Type>(array, vector, at),
        DataType::UInt32 => copy::<UInt32Type>(array, vector, at),
        DataType::UInt64 => copy::<UInt64Type>(array, vector, at),
        DataType::Float32 => copy::<Float32Type>(array, vector, at),
        DataType::Float64 => copy::<Float64Type>(array, vector, at),
        DataType::Date32 => copy::<Date32Type>(array, vector, at),
        DataType::Time64(TimeUnit::Microsecond) => copy::<Time64MicrosecondType>(array, vector, at),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            copy::<TimestampMicrosecondType>(array, vector, at)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            copy::<TimestampNanosecondType>(array, vector, at)
        }
        DataType::Decimal32(..) => copy::<Decimal32Type>(array, vector, at),
        DataType::Decimal64(..) => copy::<Decimal64Type>(array, vector, at),
        DataType::Decimal128(..) => copy::<Decimal128Type>(array, vector, at),
        // Planning only copies the types above.
        other => unreachable!("no copy for {other}"),
    }
}

/// Convert every value (NULL rows too: `f` must not fail on any input).
///
/// # Safety
/// `vector`'s physical type is `U`, with rows `at..at + array.len()`.
unsafe fn map_values<T: ArrowPrimitiveType, U>(
    array: &arrow_array::PrimitiveArray<T>,
    vector: Vector,
    at: usize,
    f: impl Fn(T::Native) -> U,
) {
    let data = vector.data::<U>().add(at);
    for (row, &value) in array.values().iter().enumerate() {
        data.add(row).write_unaligned(f(value));
    }
}

/// Convert the values of non-NULL rows, failing with `error(value)` where `f` gives `None`.
///
/// # Safety
/// As [`map_values`].
unsafe fn try_map_values<T: ArrowPrimitiveType, U: Default, E>(
    array: &arrow_array::PrimitiveArray<T>,
    vector: Vector,
    at: usize,
    nulls: Option<&NullBuffer>,
    f: impl Fn(T::Native) -> Option<U>,
    error: impl Fn(T::Native) -> E,
) -> Result<(), E> {
    try_map_slice(array.values(), vector, at, nulls, f, error)
}

/// # Safety
/// As [`map_values`].
unsafe fn try_map_slice<S: Copy, U: Default, E>(
    values: &[S],
    vector: Vector,
    at: usize,
    nulls: Option<&NullBuffer>,
    f: impl Fn(S) -> Option<U>,
    error: impl Fn(S) -> E,
) -> Result<(), E> {
    let data = vector.data::<U>().add(at);
    for (row, &value) in values.iter().enumerate() {
        let converted = if nulls.is_some_and(|nulls| nulls.is_null(row)) {
            U::default()
        } else {
            f(value).ok_or_else(|| error(value))?
        };
        data.add(row).write_unaligned(converted);
    }
    Ok(())
}

/// Decimal values into DuckDB's storage for `width`, checking each fits; the error is the
/// unscaled value that did not (`None` when even `to_i128` failed).
///
/// # Safety
/// `vector` is a DECIMAL(`width`, _) vector with rows `at..at + array.len()`.
unsafe fn narrow<T: ArrowPrimitiveType>(
    array: &arrow_array::PrimitiveArray<T>,
    width: u8,
    vector: Vector,
    at: usize,
    nulls: Option<&NullBuffer>,
    to_i128: impl Fn(T::Native) -> Option<i128>,
) -> Result<(), Option<i128>> {
    let values = array.values();
    let error = |v: T::Native| to_i128(v);
    match width {
        0..=4 => try_map_slice(
            values,
            vector,
            at,
            nulls,
            |v| i16::try_from(to_i128(v)?).ok(),
            error,
        ),
        5..=9 => try_map_slice(
            values,
            vector,
            at,
            nulls,
            |v| i32::try_from(to_i128(v)?).ok(),
            error,
        ),
        10..=18 => try_map_slice(
            values,
            vector,
            at,
            nulls,
            |v| i64::try_from(to_i128(v)?).ok(),
            error,
        ),
        _ => try_map_slice(values, vector, at, nulls, &to_i128, error),
    }
}

/// The bytes of any string or binary array, row by row.
enum ByteValues<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Binary(&'a BinaryArray),
    LargeBinary(&'a LargeBinaryArray),
    BinaryView(&'a BinaryViewArray),
    Fixed(&'a FixedSizeBinaryArray),
}

impl<'a> ByteValues<'a> {
    fn of(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Utf8 => Self::Utf8(array.as_string()),
            DataType::LargeUtf8 => Self::LargeUtf8(array.as_string()),
            DataType::Utf8View => Self::Utf8View(array.as_string_view()),
            DataType::Binary => Self::Binary(array.as_binary()),
            DataType::LargeBinary => Self::LargeBinary(array.as_binary()),
            DataType::BinaryView => Self::BinaryView(array.as_binary_view()),
            DataType::FixedSizeBinary(_) => Self::Fixed(array.as_fixed_size_binary()),
            _ => return None,
        })
    }

    fn value(&self, row: usize) -> &'a [u8] {
        match self {
            Self::Utf8(array) => array.value(row).as_bytes(),
            Self::LargeUtf8(array) => array.value(row).as_bytes(),
            Self::Utf8View(array) => array.value(row).as_bytes(),
            Self::Binary(array) => array.value(row),
            Self::LargeBinary(array) => array.value(row),
            Self::BinaryView(array) => array.value(row),
            Self::Fixed(array) => array.value(row),
        }
    }
}

/// MAP keys compared as bytes, to find repeats: strings and binaries by content, booleans
/// and fixed-width values by their bits.
enum MapKeys<'a> {
    Bytes(ByteValues<'a>),
    Boolean(&'a BooleanArray),
    /// Fixed-width values: the values buffer (already offset) and the width.
    Fixed(&'a [u8], usize),
}

impl<'a> MapKeys<'a> {
    /// Whether keys of `data_type` can be compared (and so be MAP keys).
    fn supports(data_type: &DataType) -> bool {
        matches!(
            data_type,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        ) || data_type.is_primitive()
    }

    fn of(keys: &'a dyn Array) -> Option<Self> {
        if let Some(bytes) = ByteValues::of(keys) {
            return Some(Self::Bytes(bytes));
        }
        if let Some(booleans) = keys.as_boolean_opt() {
            return Some(Self::Boolean(booleans));
        }
        let width = keys.data_type().primitive_width()?;
        arrow_array::downcast_primitive_array!(
            keys => Some(Self::Fixed(keys.values().inner().as_slice(), width)),
            _ => None,
        )
    }

    /// Key `index` as bytes (booleans are compared apart).
    fn bytes(&self, index: usize) -> &'a [u8] {
        match self {
            Self::Bytes(bytes) => bytes.value(index),
            Self::Fixed(bytes, width) => &bytes[index * width..(index + 1) * width],
            Self::Boolean(_) => &[],
        }
    }

    /// The index of a key in `range` equal to an earlier one in it. `scratch` is reused
    /// between rows so long maps are sorted without allocating.
    fn first_duplicate(
        &self,
        range: std::ops::Range<usize>,
        scratch: &mut Vec<(&'a [u8], usize)>,
    ) -> Option<usize> {
        if range.len() < 2 {
            return None;
        }
        if let Self::Boolean(array) = self {
            let mut seen = [false; 2];
            for index in range {
                let seen = &mut seen[usize::from(array.value(index))];
                if *seen {
                    return Some(index);
                }
                *seen = true;
            }
            return None;
        }
        if range.len() <= 16 {
            // Few keys (the usual case): compare pairwise.
            return range.clone().find(|&i| {
                let key = self.bytes(i);
                (range.start..i).any(|j| self.bytes(j) == key)
            });
        }
        scratch.clear();
        scratch.extend(range.map(|i| (self.bytes(i), i)));
        scratch.sort_unstable();
        // Among equal keys the sort orders by index: the second of a pair is a repeat.
        scratch
            .windows(2)
            .filter(|pair| pair[0].0 == pair[1].0)
            .map(|pair| pair[1].1)
            .min()
    }

    /// A repeated key for the error message: text as it is, other keys as bytes.
    fn describe(&self, index: usize) -> String {
        match self {
            Self::Bytes(bytes) => {
                let key = bytes.value(index);
                match std::str::from_utf8(key) {
                    Ok(text) => format!("'{text}'"),
                    Err(_) => format!("{key:?}"),
                }
            }
            Self::Boolean(array) => array.value(index).to_string(),
            Self::Fixed(..) => format!("{:?}", self.bytes(index)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_schema::{Field, Fields, UnionFields, UnionMode};

    use super::*;

    fn sql_type(field: Field) -> Result<String, String> {
        ColumnWriter::try_new(&field).map(|writer| writer.sql_type())
    }

    #[test]
    fn test_sql_type_primitives() {
        let cases = [
            (DataType::Null, "\"NULL\""),
            (DataType::Int8, "TINYINT"),
            (DataType::UInt64, "UBIGINT"),
            (DataType::Float16, "FLOAT"),
            (DataType::Utf8View, "VARCHAR"),
            (DataType::FixedSizeBinary(16), "BLOB"),
            (DataType::Date64, "DATE"),
            (DataType::Time32(TimeUnit::Second), "TIME"),
            (DataType::Time64(TimeUnit::Nanosecond), "TIME"),
            (DataType::Timestamp(TimeUnit::Second, None), "TIMESTAMP"),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "TIMESTAMP_NS",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+01:00".into())),
                "TIMESTAMP WITH TIME ZONE",
            ),
            (DataType::Decimal256(38, 2), "DECIMAL(38,2)"),
            (DataType::Duration(TimeUnit::Second), "INTERVAL"),
            (DataType::Interval(IntervalUnit::DayTime), "INTERVAL"),
            (
                DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
                "VARCHAR",
            ),
        ];
        for (data_type, expected) in cases {
            let described = sql_type(Field::new("c", data_type.clone(), true));
            assert_eq!(described.as_deref(), Ok(expected), "{data_type}");
        }
    }

    #[test]
    fn test_sql_type_uuid_needs_the_extension_name() {
        let uuid = Field::new("id", DataType::FixedSizeBinary(16), true).with_metadata(
            HashMap::from([(EXTENSION_NAME_KEY.to_owned(), UUID_EXTENSION.to_owned())]),
        );
        assert_eq!(sql_type(uuid).as_deref(), Ok("UUID"));
    }

    #[test]
    fn test_sql_type_nested() {
        let item = Field::new(
            "item",
            DataType::Struct(Fields::from(vec![
                Field::new("price", DataType::Decimal128(10, 2), true),
                Field::new_list("tags", Field::new("element", DataType::Utf8, true), true),
            ])),
            true,
        );
        let union = DataType::Union(
            UnionFields::try_new(
                [3, 1],
                [
                    Field::new("i", DataType::Int32, true),
                    Field::new("s", DataType::Utf8, true),
                ],
            )
            .unwrap(),
            UnionMode::Dense,
        );
        let value = Field::new_struct(
            "value",
            vec![
                Field::new_list("items", item, true),
                Field::new_map(
                    "attributes",
                    "entries",
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Int64, true),
                    false,
                    true,
                ),
                Field::new("choice", union, true),
            ],
            true,
        );
        assert_eq!(
            sql_type(value).as_deref(),
            Ok(
                "STRUCT(items STRUCT(price DECIMAL(10,2), tags VARCHAR[])[], \
                attributes MAP(VARCHAR, BIGINT), choice UNION(i INTEGER, s VARCHAR))"
            )
        );
    }

    #[test]
    fn test_plan_error_names_the_path() {
        let item = Field::new_struct(
            "item",
            vec![Field::new("price", DataType::Decimal256(60, 2), true)],
            true,
        );
        let value = Field::new_struct("value", vec![Field::new_list("items", item, true)], true);
        assert_eq!(
            sql_type(value).unwrap_err(),
            "value.items.price: Decimal256(60, 2) has no DuckDB type \
             (DECIMAL precision is at most 38)"
        );
    }

    #[test]
    fn test_plan_refuses_what_duckdb_cannot_hold() {
        let refused = [
            (DataType::Struct(Fields::empty()), "at least one field"),
            (DataType::Decimal128(5, -2), "negative"),
            (
                DataType::Struct(Fields::from(vec![
                    Field::new("id", DataType::Int8, true),
                    Field::new("ID", DataType::Int8, true),
                ])),
                "found 'id' and 'ID'",
            ),
            (
                DataType::Union(UnionFields::empty(), UnionMode::Sparse),
                "at least one member",
            ),
            (
                DataType::ListView(Arc::new(Field::new("item", DataType::Int8, true))),
                "list views",
            ),
            (
                DataType::new_large_list(DataType::Struct(Fields::empty()), true),
                "at least one field",
            ),
        ];
        for (data_type, reason) in refused {
            let error = sql_type(Field::new("c", data_type.clone(), true)).unwrap_err();
            assert!(error.starts_with("c"), "{error}");
            assert!(error.contains(reason), "{data_type}: {error}");
        }
    }

    #[test]
    fn test_plan_map_keys_must_be_comparable() {
        let map = Field::new_map(
            "m",
            "entries",
            Field::new("key", DataType::new_list(DataType::Int8, true), false),
            Field::new("value", DataType::Int64, true),
            false,
            true,
        );
        assert!(sql_type(map).unwrap_err().contains("MAP keys of type"));
    }

    #[test]
    fn test_map_keys_first_duplicate() {
        let many: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut repeated = many.clone();
        repeated.push("k7".into());
        for (keys, expected) in [
            (vec!["a".to_owned(), "b".into()], None),
            (vec!["a".to_owned(), "b".into(), "a".into()], Some(2)),
            (many, None),
            (repeated, Some(40)),
        ] {
            let array = StringArray::from(keys);
            let keys = MapKeys::of(&array).unwrap();
            let mut scratch = Vec::new();
            assert_eq!(keys.first_duplicate(0..array.len(), &mut scratch), expected);
        }
        let ints = arrow_array::Int64Array::from(vec![5, 6, 7, 6]).slice(1, 3);
        let keys = MapKeys::of(&ints).unwrap();
        assert_eq!(keys.first_duplicate(0..3, &mut Vec::new()), Some(2));
        assert_eq!(keys.first_duplicate(0..2, &mut Vec::new()), None);
    }
}
