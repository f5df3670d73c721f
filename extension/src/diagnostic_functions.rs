//! `kafkars_arrow_ipc(data BLOB)`: the rows of an Arrow IPC stream, as kafkars writes Arrow
//! into DuckDB.
//!
//! A diagnostic. Decoded payloads reach DuckDB through one writer ([`crate::arrow`]); this
//! function feeds that writer an Arrow IPC *stream* (what `pyarrow.ipc.new_stream` writes)
//! instead of Kafka messages, so anyone can see which DuckDB type and value an Arrow type
//! becomes, and the tests can compare the writer with DuckDB's own Arrow reader on the same
//! data.
//!
//! Bind reads the stream's schema and plans every column: bytes that are not an IPC stream,
//! or a column without a DuckDB type, are Binder Errors naming the function (and the column's
//! path). Init reads the record batches; each scan call hands out up to one chunk (2048
//! rows), slicing batches. Columns keep the schema's names.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::Mutex;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;

use crate::arrow::ColumnWriter;
use crate::capi::{BindInput, Column, DataChunk, InitInput, LogicalType, TableFunction};

/// What bind decided: the stream and a writer per column.
pub struct IpcRequest {
    data: Vec<u8>,
    writers: Vec<ColumnWriter>,
}

/// A running scan: the batches left and the next row of the first one.
pub struct IpcState {
    /// Projected column indexes, in output order.
    columns: Vec<usize>,
    batches: Mutex<(VecDeque<RecordBatch>, usize)>,
}

pub struct KafkarsArrowIpc;

impl KafkarsArrowIpc {
    fn reader(data: &[u8]) -> Result<StreamReader<Cursor<&[u8]>>, String> {
        StreamReader::try_new(Cursor::new(data), None).map_err(|e| {
            format!(
                "{}: data is not an Arrow IPC stream ({e}); expected the bytes of an IPC \
                 stream, e.g. from pyarrow.ipc.new_stream",
                Self::NAME
            )
        })
    }
}

impl TableFunction for KafkarsArrowIpc {
    type BindData = IpcRequest;
    type State = IpcState;
    type LocalState = ();

    const NAME: &'static str = "kafkars_arrow_ipc";
    const PROJECTION_PUSHDOWN: bool = true;

    fn positional() -> Vec<LogicalType> {
        vec![LogicalType::blob()]
    }

    fn named() -> Vec<(&'static str, LogicalType)> {
        Vec::new()
    }

    fn bind(input: &BindInput) -> Result<(Vec<Column>, IpcRequest), String> {
        let data = match input.positional(0) {
            Some(value) if !value.is_null() => value.to_blob(),
            _ => {
                return Err(format!(
                    "{}: data is NULL; expected the bytes of an Arrow IPC stream",
                    Self::NAME
                ))
            }
        };
        let schema = Self::reader(&data)?.schema();
        if schema.fields().is_empty() {
            return Err(format!(
                "{}: the stream's schema has no columns",
                Self::NAME
            ));
        }
        let mut columns: Vec<Column> = Vec::with_capacity(schema.fields().len());
        let mut writers = Vec::with_capacity(schema.fields().len());
        for (index, field) in schema.fields().iter().enumerate() {
            let writer =
                ColumnWriter::try_new(field).map_err(|e| format!("{}: column {e}", Self::NAME))?;
            let name = column_name(field.name(), index, &columns);
            columns.push(Column::new(name, writer.logical_type()));
            writers.push(writer);
        }
        Ok((columns, IpcRequest { data, writers }))
    }

    fn init(request: &IpcRequest, input: &InitInput) -> Result<IpcState, String> {
        let batches = Self::reader(&request.data)?
            .filter(|batch| batch.as_ref().map_or(true, |batch| batch.num_rows() > 0))
            .collect::<Result<VecDeque<_>, _>>()
            .map_err(|e| format!("{}: reading the stream's record batches: {e}", Self::NAME))?;
        Ok(IpcState {
            columns: input.projected_columns(),
            batches: Mutex::new((batches, 0)),
        })
    }

    fn scan(
        request: &IpcRequest,
        state: &IpcState,
        _: &mut (),
        output: &mut DataChunk,
    ) -> Result<(), String> {
        let mut guard = state
            .batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (batches, next_row) = &mut *guard;
        let Some(batch) = batches.front() else {
            output.set_len(0);
            return Ok(());
        };
        let rows = DataChunk::capacity().min(batch.num_rows() - *next_row);
        for (position, &column) in state.columns.iter().enumerate() {
            // An index past the schema is DuckDB's row id (count(*)): nothing to write.
            let Some(writer) = request.writers.get(column) else {
                continue;
            };
            let array = batch.column(column).slice(*next_row, rows);
            writer
                .write(array.as_ref(), output.vector(position))
                .map_err(|e| format!("{}: column {e}", Self::NAME))?;
        }
        output.set_len(rows);
        *next_row += rows;
        if *next_row == batch.num_rows() {
            batches.pop_front();
            *next_row = 0;
        }
        Ok(())
    }
}

/// A result column's name: the field's, made unique as DuckDB's own Arrow reader does (a
/// repeated name gets `_1`, `_2`, … and an empty one `v<index>`); DuckDB refuses a table
/// function whose column names repeat, ignoring case.
fn column_name(name: &str, index: usize, taken: &[Column]) -> String {
    let is_taken = |candidate: &str| {
        taken
            .iter()
            .any(|column| column.name.eq_ignore_ascii_case(candidate))
    };
    let base = if name.is_empty() {
        format!("v{index}")
    } else {
        name.to_owned()
    };
    if !is_taken(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}_{n}"))
        .find(|candidate| !is_taken(candidate))
        .unwrap_or(base)
}
