//! Plans and single-range reads for Python: `plan` resolves topics into offset ranges once,
//! `RawRangeReader` reads exactly one of them. `kafkars.plan`, `kafkars.read_range` and
//! `kafkars.ray` wrap them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arrow_schema::ffi::FFI_ArrowSchema;
use kafkars_core::batch::{self, Column};
use kafkars_core::{
    default_split_size, plan_scan, split_ranges, PartitionRange, PayloadDecoders, Record, Scan,
    ScanOptions, ScanSelection, DEFAULT_IDLE_TIMEOUT,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::errors::to_py;
use crate::selection::{scan_selection, SourceTopicArgs};
use crate::shared::{
    capsules, client_settings, export_batch, positive_batch_size, run_interruptibly,
    DecodingArguments, SIGNAL_CHECK_INTERVAL,
};

/// One range as Python sees it: `(topic, partition, start, stop)`.
type RangeTuple = (String, i32, i64, i64);

fn to_tuple(range: PartitionRange) -> RangeTuple {
    (range.topic, range.partition, range.start, range.stop)
}

/// Resolve `topics` (see [`SourceTopicArgs`], as `RawConsumerManager` takes them) into
/// `[start, stop)` ranges, in (topic, partition) order; then cut them into pieces of at most
/// `split_size` offsets, or, with `workers` instead, of `default_split_size(ranges, workers)`.
#[pyfunction]
#[pyo3(signature = (config, topics, cutoff_ms, timeout_ms, split_size=None, workers=None))]
pub fn plan(
    py: Python<'_>,
    config: HashMap<String, String>,
    topics: Vec<SourceTopicArgs>,
    cutoff_ms: Option<i64>,
    timeout_ms: u64,
    split_size: Option<i64>,
    workers: Option<usize>,
) -> PyResult<Vec<RangeTuple>> {
    let settings = client_settings(config, timeout_ms)?;
    let ranges = py
        .detach(|| {
            // Patterns are matched against the cluster's topics now.
            let selection = scan_selection(&settings, topics, cutoff_ms)?;
            let ranges = plan_scan(&settings, &selection)?;
            match (split_size, workers) {
                (Some(size), _) => split_ranges(ranges, size),
                (None, Some(workers)) => {
                    let size = default_split_size(&ranges, workers);
                    split_ranges(ranges, size)
                }
                (None, None) => Ok(ranges),
            }
        })
        .map_err(to_py)?;
    Ok(ranges.into_iter().map(to_tuple).collect())
}

/// Reads exactly one range, `[start, stop)` of one partition, as Arrow batches of at most
/// `batch_size` rows holding only the projected columns.
#[pyclass(module = "kafkars._internal")]
pub struct RawRangeReader {
    /// `None` once done or closed. Locked only without the GIL.
    scan: Mutex<Option<Scan>>,
    ranges: Arc<Vec<PartitionRange>>,
    columns: Vec<Column>,
    batch_size: usize,
    decoders: Mutex<PayloadDecoders>,
}

#[pymethods]
impl RawRangeReader {
    /// `columns`: names out of the batch schema, `None` for all of them; `decoding`: see
    /// [`DecodingArguments`].
    #[new]
    // One argument per keyword of `kafkars.read_range`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        config, topic, partition, start, stop, columns, batch_size, max_buffer_bytes, timeout_ms,
        decoding
    ))]
    fn new(
        py: Python<'_>,
        config: HashMap<String, String>,
        topic: String,
        partition: i32,
        start: i64,
        stop: i64,
        columns: Option<Vec<String>>,
        batch_size: usize,
        max_buffer_bytes: usize,
        timeout_ms: u64,
        decoding: DecodingArguments,
    ) -> PyResult<Self> {
        let batch_size = positive_batch_size(batch_size)?;
        let settings = client_settings(config, timeout_ms)?;
        let decoding = decoding.into_spec(&settings)?;
        // An explicit plan of one range: opening checks it against the log (a start that
        // retention deleted, a stop past the end, an unknown topic or partition) and reads
        // exactly it.
        let range = PartitionRange {
            topic,
            partition,
            start,
            stop,
        };
        let selection = ScanSelection::from_ranges("range", vec![range]).map_err(to_py)?;
        // Which fields to copy depends on the projection, which is checked against the
        // decoders' columns: the reader schemas first (a registry lookup), then the scan.
        let (scan, decoders, columns) = run_interruptibly(py, move || {
            let decoders = PayloadDecoders::for_scan(&decoding, &settings, &selection)?;
            let columns = match columns {
                None => Column::available(&decoders),
                Some(names) => Column::parse_projection(&names, &decoders)?,
            };
            let options = ScanOptions {
                max_buffer_bytes,
                fields: Column::fields(&columns, &decoders),
                follow: false,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                ordered: true,
                // Bounded: no partition is added while reading.
                ..ScanOptions::default()
            };
            let scan = Scan::open(&settings, &selection, options)?;
            Ok((scan, decoders, columns))
        })?;
        Ok(Self {
            ranges: Arc::new(scan.ranges().to_vec()),
            scan: Mutex::new(Some(scan)),
            columns,
            batch_size,
            decoders: Mutex::new(decoders),
        })
    }

    /// The next batch (Arrow C data interface capsules `(schema, array)` of a struct array)
    /// of up to `batch_size` rows, or `None` once the range has been read.
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)>> {
        let mut records: Vec<Record> = Vec::new();
        let done = loop {
            let stretch = Instant::now() + SIGNAL_CHECK_INTERVAL;
            let wanted = self.batch_size - records.len();
            let done = py.detach(|| {
                let mut guard = self.lock();
                let Some(scan) = guard.as_mut() else {
                    return Ok(true);
                };
                scan.next_records(wanted, &mut records, Some(stretch))
                    .map_err(to_py)?;
                Ok::<_, PyErr>(scan.is_done())
            })?;
            if done || records.len() == self.batch_size {
                break done;
            }
            py.check_signals()?;
        };
        if done {
            // Release the consumer as soon as the range is read.
            let scan = py.detach(|| self.lock().take());
            py.detach(|| drop(scan));
        }
        if records.is_empty() {
            return Ok(None);
        }
        let exported = py.detach(|| {
            let mut decoders = self
                .decoders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let batch =
                batch::projected_batch(&self.ranges, &records, &mut decoders, &self.columns)
                    .map_err(to_py)?;
            drop(records);
            export_batch(batch)
        })?;
        capsules(py, exported).map(Some)
    }

    /// The schema of every batch (an Arrow C data interface capsule), also when the range
    /// holds no record.
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let decoders = self
            .decoders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let schema = batch::projected_schema(&decoders, &self.columns);
        drop(decoders);
        let exported = FFI_ArrowSchema::try_from(schema.as_ref())
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        PyCapsule::new_with_value(py, exported, c"arrow_schema")
    }

    /// The names of the columns every batch has, in order.
    #[getter]
    fn columns(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name()).collect()
    }

    /// Stop fetching and release the consumer. Idempotent.
    fn close(&self, py: Python<'_>) {
        let scan = py.detach(|| self.lock().take());
        py.detach(|| drop(scan));
    }
}

impl RawRangeReader {
    fn lock(&self) -> MutexGuard<'_, Option<Scan>> {
        self.scan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
