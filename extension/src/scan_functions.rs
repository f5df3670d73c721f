//! `kafka_scan(topics, ...)`: the messages of Kafka topics as rows, in timestamp order; and
//! `kafka_offsets(topics, ...)`: the offsets such a scan would read, without reading them.
//!
//! Bind checks every argument without touching the network. Init resolves the offsets (so
//! unknown topics and unreachable brokers show as Invalid Input Errors naming them) and starts
//! fetching. Each scan call hands over up to one chunk (2048 rows), writing key, value and
//! header bytes straight from the engine's buffers into DuckDB's vectors.

use std::sync::Mutex;

use arrow_array::Array;
use arrow_schema::{DataType, Field};
use kafkars_core::{
    default_split_size, plan_scan, plan_scan_with_notes, split_ranges, ClientSettings,
    DecodedColumns, Fields, PartitionRange, PayloadDecoders, PlannedRange, Record, Scan,
    ScanOptions, ScanSelection, Side, Watch, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_METADATA_REFRESH, MIN_MAX_BUFFER_BYTES,
};

use crate::arrow::ColumnWriter;
use crate::capi::{BindInput, Column, DataChunk, InitInput, LogicalType, TableFunction, Vector};
use crate::params;
use crate::rows::{error_text, Rows};

/// kafka_scan's columns, in order (SPEC §2).
mod column {
    pub const TOPIC: usize = 0;
    pub const PARTITION: usize = 1;
    pub const OFFSET: usize = 2;
    pub const TIMESTAMP: usize = 3;
    pub const TIMESTAMP_TYPE: usize = 4;
    pub const KEY: usize = 5;
    pub const VALUE: usize = 6;
    pub const HEADERS: usize = 7;
    /// With `on_error := 'null'` and a decoded key or value: why a row's key or value is NULL.
    pub const DECODE_ERROR: usize = 8;
}

/// What bind decided for kafka_scan.
pub struct ScanRequest {
    settings: ClientSettings,
    selection: ScanSelection,
    options: ScanOptions,
    /// Unordered, bounded scans: cut partitions into pieces of this many offsets (`None`:
    /// chosen from the plan so that every thread has work).
    split_size: Option<i64>,
    /// Resolved at bind (the column types depend on the reader schemas); each reading
    /// thread gets a fork.
    decoders: Mutex<PayloadDecoders>,
    /// Writers of the decoded columns (key, value, decode_error), planned at bind.
    writers: DecodedWriters,
}

/// The writers of a scan's decoded columns; `None` where the column is not decoded.
#[derive(Default)]
struct DecodedWriters {
    key: Option<ColumnWriter>,
    value: Option<ColumnWriter>,
    decode_error: Option<ColumnWriter>,
}

/// A running kafka_scan.
pub struct ScanState {
    work: Work,
    /// Projected column indexes, in output order.
    columns: Vec<usize>,
}

enum Work {
    /// Ordered: one scan merges every partition, read by one thread at a time.
    Ordered(Box<Mutex<ScanPart>>),
    /// Unordered: the resolved partitions, in groups that scanning threads claim one by one.
    Unordered {
        settings: ClientSettings,
        options: ScanOptions,
        groups: Mutex<Vec<Vec<PartitionRange>>>,
        threads: u64,
    },
}

/// An engine scan and the chunk being written from it.
pub struct ScanPart {
    scan: Scan,
    rows: Vec<Record>,
    decoders: PayloadDecoders,
}

impl ScanPart {
    fn new(scan: Scan, request: &ScanRequest) -> Self {
        Self {
            scan,
            rows: Vec::with_capacity(DataChunk::capacity()),
            decoders: request
                .decoders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .fork(),
        }
    }

    /// Write the next rows of this scan into `output`; none when it is done.
    fn emit(
        &mut self,
        columns: &[usize],
        writers: &DecodedWriters,
        output: &mut DataChunk,
    ) -> Result<(), String> {
        let Self {
            scan,
            rows,
            decoders,
        } = self;
        rows.clear();
        // No deadline: a call that returns no row ends the scan, so in follow mode it waits
        // for the next message.
        scan.next_records(DataChunk::capacity(), rows, None)
            .map_err(|e| error_text(KafkaScan::NAME, e))?;
        let decoded = if decoders.is_raw() {
            DecodedColumns::default()
        } else {
            // decode_error needs every decoded side; otherwise only the projected ones.
            let errors = columns.contains(&column::DECODE_ERROR);
            decoders
                .decode(
                    scan.ranges(),
                    rows,
                    errors || columns.contains(&column::KEY),
                    errors || columns.contains(&column::VALUE),
                )
                .map_err(|e| error_text(KafkaScan::NAME, e))?
        };
        for (position, &column) in columns.iter().enumerate() {
            let vector = output.vector(position);
            let decoded_column = match column {
                column::KEY => writers.key.as_ref().zip(decoded.key.as_deref()),
                column::VALUE => writers.value.as_ref().zip(decoded.value.as_deref()),
                column::DECODE_ERROR => writers
                    .decode_error
                    .as_ref()
                    .zip(decoded.decode_error.as_ref().map(|a| a as &dyn Array)),
                _ => None,
            };
            match decoded_column {
                Some((writer, array)) => writer
                    .write(array, vector)
                    .map_err(|reason| format!("{}: {reason}", KafkaScan::NAME))?,
                None => write_column(scan.ranges(), rows, column, vector),
            }
        }
        output.set_len(rows.len());
        // Release the messages (and librdkafka's buffers) now, not at the next call.
        rows.clear();
        Ok(())
    }
}

/// A thread of an unordered scan: the group of partitions it is reading.
#[derive(Default)]
pub struct ScanThread {
    part: Option<ScanPart>,
}

/// Share `ranges` (sorted by topic, partition and start) out into groups for `threads`
/// reading threads: at least `threads` groups when there are that many ranges, and a
/// partition's pieces always in different groups (one consumer reads a partition once).
fn group_ranges(ranges: Vec<PartitionRange>, threads: usize) -> Vec<Vec<PartitionRange>> {
    let mut most_pieces = 0;
    let mut run = 0;
    for (index, range) in ranges.iter().enumerate() {
        let same = index > 0
            && ranges[index - 1].topic == range.topic
            && ranges[index - 1].partition == range.partition;
        run = if same { run + 1 } else { 1 };
        most_pieces = most_pieces.max(run);
    }
    // A partition's pieces are consecutive, so dealing them out in turn puts them in
    // different groups as long as there are at least as many groups as pieces.
    let groups = threads.max(most_pieces).clamp(1, ranges.len().max(1));
    let mut grouped: Vec<Vec<PartitionRange>> = (0..groups).map(|_| Vec::new()).collect();
    for (index, range) in ranges.into_iter().enumerate() {
        grouped[index % groups].push(range);
    }
    grouped.retain(|group| !group.is_empty());
    grouped
}

/// `split_size := N`: at least 1, else an error naming it.
fn split_size(input: &BindInput) -> Result<Option<i64>, kafkars_core::Error> {
    let size = params::integer(input, "split_size")?;
    if let Some(size) = size {
        if size < 1 {
            return Err(kafkars_core::Error::InvalidParameter {
                parameter: "split_size".into(),
                reason: format!("expected a number of offsets of at least 1, found {size}"),
            });
        }
    }
    Ok(size)
}

pub struct KafkaScan;

impl TableFunction for KafkaScan {
    type BindData = ScanRequest;
    type State = ScanState;
    type LocalState = ScanThread;

    const NAME: &'static str = "kafka_scan";
    const PROJECTION_PUSHDOWN: bool = true;

    fn positional() -> Vec<LogicalType> {
        vec![LogicalType::varchar()]
    }

    fn named() -> Vec<(&'static str, LogicalType)> {
        let mut named = params::client_parameters();
        named.extend(params::selection_parameters());
        named.push(("max_buffer_bytes", LogicalType::bigint()));
        named.push(("follow", LogicalType::boolean()));
        named.push(("ordered", LogicalType::boolean()));
        named.push(("idle_timeout", LogicalType::interval()));
        named.push(("split_size", LogicalType::bigint()));
        named.push(("metadata_refresh", LogicalType::interval()));
        named.extend(params::decode_parameters());
        named
    }

    fn bind(input: &BindInput) -> Result<(Vec<Column>, ScanRequest), String> {
        let request = (|| {
            let settings = params::client_settings(input)?;
            let selection = params::scan_selection(input, &settings)?;
            let max_buffer_bytes = match params::integer(input, "max_buffer_bytes")? {
                None => DEFAULT_MAX_BUFFER_BYTES,
                Some(bytes) => {
                    usize::try_from(bytes).map_err(|_| kafkars_core::Error::InvalidParameter {
                        parameter: "max_buffer_bytes".into(),
                        reason: format!(
                            "expected at least {MIN_MAX_BUFFER_BYTES} bytes, found {bytes}"
                        ),
                    })?
                }
            };
            let follow = params::boolean(input, "follow")?.unwrap_or(false);
            let follow_only = |parameter: &str, value: Option<_>| {
                if value.is_some() && !follow {
                    return Err(kafkars_core::Error::InvalidParameter {
                        parameter: parameter.into(),
                        reason: "it applies to follow mode only; add follow := true or leave \
                                 it out"
                            .into(),
                    });
                }
                Ok(value)
            };
            let idle_timeout =
                follow_only("idle_timeout", params::interval(input, "idle_timeout")?)?;
            let metadata_refresh = follow_only(
                "metadata_refresh",
                params::positive_interval(input, "metadata_refresh")?,
            )?;
            if follow && selection.ranges.is_some() {
                return Err(kafkars_core::Error::InvalidParameter {
                    parameter: "ranges".into(),
                    reason: "a plan ends at its stop offsets, so it cannot be followed; use \
                             start_offsets with follow := true"
                        .into(),
                });
            }
            let options = ScanOptions {
                max_buffer_bytes,
                fields: Fields::ALL,
                follow,
                idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
                ordered: params::boolean(input, "ordered")?.unwrap_or(true),
                metadata_refresh: metadata_refresh.unwrap_or(DEFAULT_METADATA_REFRESH),
            };
            options.validate()?;
            let split_size = split_size(input)?;
            if split_size.is_some() && (options.ordered || follow) {
                return Err(kafkars_core::Error::InvalidParameter {
                    parameter: "split_size".into(),
                    reason: "it splits partitions between the threads of a bounded scan with \
                             ordered := false; add ordered := false (without follow) or leave \
                             it out"
                        .into(),
                });
            }
            let decoding = params::decode_spec(input, settings.timeout())?;
            // The column types are the reader schemas': resolve them now (registry requests,
            // a JSON sample), once for the whole scan.
            let decoders = PayloadDecoders::for_scan(&decoding, &settings, &selection)?;
            Ok((settings, selection, options, split_size, decoders))
        })()
        .map_err(|e| error_text(Self::NAME, e))?;
        let (settings, selection, options, split_size, decoders) = request;
        let plan = |side: Side| -> Result<Option<ColumnWriter>, String> {
            decoders
                .side(side)
                .map(|decoder| {
                    let field = Field::new(side.as_str(), decoder.data_type().clone(), true);
                    ColumnWriter::try_new(&field).map_err(|reason| {
                        format!(
                            "{}: the {} schema has no DuckDB column type: {reason}",
                            Self::NAME,
                            side.as_str()
                        )
                    })
                })
                .transpose()
        };
        let writers = DecodedWriters {
            key: plan(Side::Key)?,
            value: plan(Side::Value)?,
            decode_error: if decoders.has_error_column() {
                Some(ColumnWriter::try_new(&Field::new(
                    "decode_error",
                    DataType::Utf8,
                    true,
                ))?)
            } else {
                None
            },
        };
        let payload_type = |writer: &Option<ColumnWriter>| {
            writer
                .as_ref()
                .map_or_else(LogicalType::blob, ColumnWriter::logical_type)
        };
        let key_type = payload_type(&writers.key);
        let value_type = payload_type(&writers.value);
        let error_column = writers.decode_error.is_some();
        let request = ScanRequest {
            settings,
            selection,
            options,
            split_size,
            decoders: Mutex::new(decoders),
            writers,
        };

        let header = LogicalType::structure(&[
            ("key", LogicalType::varchar()),
            ("value", LogicalType::blob()),
        ]);
        let columns = vec![
            Column::new("topic", LogicalType::varchar()),
            Column::new("partition", LogicalType::integer()),
            Column::new("offset", LogicalType::bigint()),
            Column::new("timestamp", LogicalType::timestamp_tz()),
            Column::new("timestamp_type", LogicalType::varchar()),
            Column::new("key", key_type),
            Column::new("value", value_type),
            Column::new("headers", LogicalType::list(&header)),
        ];
        let mut columns = columns;
        if error_column {
            columns.push(Column::new("decode_error", LogicalType::varchar()));
        }
        Ok((columns, request))
    }

    fn init(request: &ScanRequest, input: &InitInput) -> Result<ScanState, String> {
        let columns = input.projected_columns();
        // decode_error is known only by decoding: it needs the decoded sides' bytes.
        let errors = columns.contains(&column::DECODE_ERROR);
        let decoders = request
            .decoders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fields = Fields {
            key: columns.contains(&column::KEY) || (errors && decoders.side(Side::Key).is_some()),
            value: columns.contains(&column::VALUE)
                || (errors && decoders.side(Side::Value).is_some()),
            headers: columns.contains(&column::HEADERS),
        };
        drop(decoders);
        let options = ScanOptions {
            fields,
            ..request.options
        };
        let work = if options.ordered {
            let scan = Scan::open(&request.settings, &request.selection, options)
                .map_err(|e| error_text(Self::NAME, e))?;
            Work::Ordered(Box::new(Mutex::new(ScanPart::new(scan, request))))
        } else {
            // Resolve once, so every thread reads offsets of the same moment. A followed
            // scan never finishes a group, so it cannot hand groups out to fewer threads
            // than groups: it reads on one thread (unordered, without the merge's waits).
            let ranges = plan_scan(&request.settings, &request.selection)
                .map_err(|e| error_text(Self::NAME, e))?;
            let threads = if options.follow {
                1
            } else {
                std::thread::available_parallelism().map_or(1, usize::from)
            };
            let ranges = if options.follow {
                ranges
            } else {
                let size = request
                    .split_size
                    .unwrap_or_else(|| default_split_size(&ranges, threads));
                split_ranges(ranges, size).map_err(|e| error_text(Self::NAME, e))?
            };
            let mut groups = group_ranges(ranges, threads);
            if options.follow && groups.is_empty() {
                // Nothing to read yet (a pattern no topic matches so far): one scan watches
                // for what comes.
                groups.push(Vec::new());
            }
            // The budget is shared by the groups' scans.
            let options = ScanOptions {
                max_buffer_bytes: (options.max_buffer_bytes / groups.len().max(1))
                    .max(MIN_MAX_BUFFER_BYTES),
                ..options
            };
            Work::Unordered {
                settings: request.settings.clone(),
                options,
                threads: groups.len().max(1) as u64,
                groups: Mutex::new(groups),
            }
        };
        Ok(ScanState { work, columns })
    }

    fn max_threads(_: &ScanRequest, state: &ScanState) -> u64 {
        match &state.work {
            Work::Ordered(_) => 1,
            Work::Unordered { threads, .. } => *threads,
        }
    }

    fn scan(
        request: &ScanRequest,
        state: &ScanState,
        thread: &mut ScanThread,
        output: &mut DataChunk,
    ) -> Result<(), String> {
        match &state.work {
            Work::Ordered(part) => part
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .emit(&state.columns, &request.writers, output),
            Work::Unordered {
                settings,
                options,
                groups,
                ..
            } => loop {
                if let Some(part) = &mut thread.part {
                    part.emit(&state.columns, &request.writers, output)?;
                    if output.len() > 0 {
                        return Ok(());
                    }
                    thread.part = None;
                }
                let group = groups
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .pop();
                let Some(group) = group else {
                    return Ok(());
                };
                let mut scan = Scan::open_ranges(settings, group, *options)
                    .map_err(|e| error_text(Self::NAME, e))?;
                // A followed scan has one group (see init), so one scan watches the
                // selection for new partitions, as the ordered scan does.
                scan.watch(Watch::for_selection(&request.selection));
                thread.part = Some(ScanPart::new(scan, request));
            },
        }
    }
}

/// Write one projected column of `rows` into `vector`.
fn write_column(ranges: &[PartitionRange], rows: &[Record], column: usize, vector: Vector) {
    let range = |record: &Record| &ranges[record.source as usize];
    match column {
        column::TOPIC => {
            for (row, record) in rows.iter().enumerate() {
                vector.set_bytes(row, range(record).topic.as_bytes());
            }
        }
        // SAFETY (all `set` calls): the physical types match the columns declared in bind.
        column::PARTITION => {
            for (row, record) in rows.iter().enumerate() {
                unsafe { vector.set::<i32>(row, range(record).partition) };
            }
        }
        column::OFFSET => {
            for (row, record) in rows.iter().enumerate() {
                unsafe { vector.set::<i64>(row, record.offset) };
            }
        }
        column::TIMESTAMP => {
            // DuckDB's TIMESTAMPTZ is microseconds; Kafka's timestamps are milliseconds.
            for (row, record) in rows.iter().enumerate() {
                match record.timestamp_ms {
                    Some(ms) => unsafe { vector.set::<i64>(row, ms.saturating_mul(1000)) },
                    None => vector.set_null(row),
                }
            }
        }
        column::TIMESTAMP_TYPE => {
            for (row, record) in rows.iter().enumerate() {
                match record.timestamp_type {
                    Some(kind) => vector.set_bytes(row, kind.as_str().as_bytes()),
                    None => vector.set_null(row),
                }
            }
        }
        column::KEY | column::VALUE => {
            for (row, record) in rows.iter().enumerate() {
                let bytes = if column == column::KEY {
                    record.key()
                } else {
                    record.value()
                };
                match bytes {
                    Some(bytes) => vector.set_bytes(row, bytes),
                    None => vector.set_null(row),
                }
            }
        }
        column::HEADERS => {
            let mut list = vector.list();
            for (row, record) in rows.iter().enumerate() {
                let (child, first) = list.append_row(row, record.header_count());
                let (keys, values) = (child.struct_field(0), child.struct_field(1));
                for (index, header) in record.headers().enumerate() {
                    keys.set_bytes(first + index, header.key.as_bytes());
                    match header.value {
                        Some(value) => values.set_bytes(first + index, value),
                        None => values.set_null(first + index),
                    }
                }
            }
        }
        // DuckDB's row id (count(*)): nothing to fill.
        _ => {}
    }
}

/// What bind decided for kafka_offsets.
pub struct OffsetsRequest {
    settings: ClientSettings,
    selection: ScanSelection,
    split_size: Option<i64>,
}

/// `kafka_offsets(topics, ...)`: per partition, the offsets kafka_scan with the same
/// arguments would read.
pub struct KafkaOffsets;

impl TableFunction for KafkaOffsets {
    type BindData = OffsetsRequest;
    type State = Rows<PlannedRange>;
    type LocalState = ();

    const NAME: &'static str = "kafka_offsets";

    fn positional() -> Vec<LogicalType> {
        vec![LogicalType::varchar()]
    }

    fn named() -> Vec<(&'static str, LogicalType)> {
        let mut named = params::client_parameters();
        named.extend(params::selection_parameters());
        named.push(("split_size", LogicalType::bigint()));
        named
    }

    fn bind(input: &BindInput) -> Result<(Vec<Column>, OffsetsRequest), String> {
        let request = (|| {
            let settings = params::client_settings(input)?;
            Ok(OffsetsRequest {
                selection: params::scan_selection(input, &settings)?,
                split_size: split_size(input)?,
                settings,
            })
        })()
        .map_err(|e| error_text(Self::NAME, e))?;
        let columns = vec![
            Column::new("topic", LogicalType::varchar()),
            Column::new("partition", LogicalType::integer()),
            Column::new("start_offset", LogicalType::bigint()),
            Column::new("stop_offset", LogicalType::bigint()),
            Column::new("messages", LogicalType::bigint()),
            Column::new("note", LogicalType::varchar()),
        ];
        Ok((columns, request))
    }

    fn init(request: &OffsetsRequest, _: &InitInput) -> Result<Rows<PlannedRange>, String> {
        let planned = plan_scan_with_notes(&request.settings, &request.selection)
            .map_err(|e| error_text(Self::NAME, e))?;
        let Some(size) = request.split_size else {
            return Ok(Rows::new(planned));
        };
        let mut pieces = Vec::with_capacity(planned.len());
        for PlannedRange { range, note } in planned {
            let split = split_ranges(vec![range], size).map_err(|e| error_text(Self::NAME, e))?;
            pieces.extend(split.into_iter().map(|range| PlannedRange {
                range,
                note: note.clone(),
            }));
        }
        Ok(Rows::new(pieces))
    }

    fn scan(
        _: &OffsetsRequest,
        rows: &Rows<PlannedRange>,
        _: &mut (),
        output: &mut DataChunk,
    ) -> Result<(), String> {
        rows.emit(output, 6, |row, PlannedRange { range, note }, columns| {
            columns[0].set_bytes(row, range.topic.as_bytes());
            // SAFETY: the column types are the ones declared in bind.
            unsafe {
                columns[1].set::<i32>(row, range.partition);
                columns[2].set::<i64>(row, range.start);
                columns[3].set::<i64>(row, range.stop);
                columns[4].set::<i64>(row, range.offsets());
            }
            match note {
                Some(note) => columns[5].set_bytes(row, note.as_bytes()),
                None => columns[5].set_null(row),
            }
        });
        Ok(())
    }
}
