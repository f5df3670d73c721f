//! `RawConsumerManager`: the engine's follow-mode scan for Python. The public class
//! `kafkars.ConsumerManager` wraps it with argument checks and docstrings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::ffi::FFI_ArrowArray;
use arrow_array::{Array, StructArray};
use arrow_schema::ffi::FFI_ArrowSchema;
use kafkars_core::{batch, Fields, PartitionRange, PayloadDecoders, Record, Scan, ScanOptions};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::errors::to_py;
use crate::selection::SourceTopicArgs;
use crate::shared::{
    client_settings, open_interruptibly, positive_batch_size, DecodingArguments,
    SIGNAL_CHECK_INTERVAL,
};

/// A follow-mode scan over several topics, each with its own start policy.
#[pyclass(module = "kafkars._internal")]
pub struct RawConsumerManager {
    /// `None` once closed. Locked only without the GIL (see `with_scan`), so two Python threads
    /// polling one manager take turns instead of deadlocking.
    scan: Mutex<Option<Scan>>,
    /// A copy of the scan's ranges, which records' `source` index, for building batches
    /// outside the scan's lock. The scan's list only grows (follow mode adds partitions
    /// created meanwhile): `poll` renews the copy when it is shorter, under the scan's lock,
    /// together with taking the records.
    ranges: Mutex<Arc<Vec<PartitionRange>>>,
    batch_size: usize,
    /// Decode keys and values into typed columns; taken by the thread that builds a batch.
    decoders: Mutex<PayloadDecoders>,
}

#[pymethods]
impl RawConsumerManager {
    /// `topics`: see [`SourceTopicArgs`]; `decoding`: see [`DecodingArguments`].
    #[new]
    // One argument per keyword of the Python constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        config, topics, cutoff_ms, batch_size, max_buffer_bytes, idle_timeout_ms, timeout_ms,
        metadata_refresh_ms, decoding
    ))]
    fn new(
        py: Python<'_>,
        config: HashMap<String, String>,
        topics: Vec<SourceTopicArgs>,
        cutoff_ms: i64,
        batch_size: usize,
        max_buffer_bytes: usize,
        idle_timeout_ms: u64,
        timeout_ms: u64,
        metadata_refresh_ms: u64,
        decoding: DecodingArguments,
    ) -> PyResult<Self> {
        let batch_size = positive_batch_size(batch_size)?;
        let settings = client_settings(config, timeout_ms)?;
        let decoding = decoding.into_spec(&settings)?;
        let selection =
            crate::selection::scan_selection(&settings, topics, Some(cutoff_ms)).map_err(to_py)?;
        let options = ScanOptions {
            max_buffer_bytes,
            fields: Fields::ALL,
            follow: true,
            idle_timeout: Duration::from_millis(idle_timeout_ms),
            ordered: true,
            metadata_refresh: Duration::from_millis(metadata_refresh_ms),
        };
        // Checked before any request is sent.
        options.validate().map_err(to_py)?;
        let (scan, decoders) = open_interruptibly(py, settings, selection, options, decoding)?;
        Ok(Self {
            ranges: Mutex::new(Arc::new(scan.ranges().to_vec())),
            scan: Mutex::new(Some(scan)),
            batch_size,
            decoders: Mutex::new(decoders),
        })
    }

    /// The next rows, at most `batch_size`, waiting up to `timeout_ms` for the first: the
    /// Arrow C data interface capsules `(schema, array)` of a struct array.
    fn poll<'py>(
        &self,
        py: Python<'py>,
        timeout_ms: u64,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut records: Vec<Record> = Vec::new();
        let ranges = loop {
            let stretch = deadline.min(Instant::now() + SIGNAL_CHECK_INTERVAL);
            let wanted = self.batch_size - records.len();
            let ranges = py.detach(|| {
                self.with_scan(|scan| {
                    scan.next_records(wanted, &mut records, Some(stretch))
                        .map_err(to_py)?;
                    Ok(self.ranges_of(scan))
                })
            })?;
            if !records.is_empty() || Instant::now() >= deadline {
                break ranges;
            }
            py.check_signals()?;
        };
        let (array, schema) = py.detach(|| {
            let mut decoders = self
                .decoders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let batch = batch::decoded_batch(&ranges, &records, &mut decoders).map_err(to_py)?;
            drop(records);
            let data = StructArray::from(batch).into_data();
            let schema = FFI_ArrowSchema::try_from(data.data_type())
                .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
            Ok::<_, PyErr>((FFI_ArrowArray::new(&data), schema))
        })?;
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(py, array, c"arrow_array")?,
        ))
    }

    /// Whether every message before the stop offsets has been returned by `poll`.
    fn is_live(&self, py: Python<'_>) -> PyResult<bool> {
        py.detach(|| self.with_scan(|scan| Ok(scan.is_live())))
    }

    /// Per partition: offsets, progress and buffering, as dicts.
    fn partition_state<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let states = py.detach(|| self.with_scan(|scan| Ok(scan.partition_state())))?;
        states
            .into_iter()
            .map(|state| {
                let dict = PyDict::new(py);
                dict.set_item("topic", state.topic)?;
                dict.set_item("partition", state.partition)?;
                dict.set_item("start", state.start)?;
                dict.set_item("stop", state.stop)?;
                dict.set_item("position", state.position)?;
                dict.set_item("buffered_messages", state.buffered_messages)?;
                dict.set_item("buffered_bytes", state.buffered_bytes)?;
                dict.set_item("paused", state.paused)?;
                dict.set_item("live", state.live)?;
                Ok(dict)
            })
            .collect()
    }

    /// Stop fetching and release the consumer. Idempotent.
    fn close(&self, py: Python<'_>) {
        let scan = py.detach(|| self.lock().take());
        py.detach(|| drop(scan));
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().is_none())
    }
}

impl RawConsumerManager {
    /// The ranges `scan`'s records index, as a shared copy: the kept one while it is
    /// complete, else a new one, kept from then on. Call it under the scan's lock, right
    /// after taking records, so that the copy covers their sources.
    fn ranges_of(&self, scan: &Scan) -> Arc<Vec<PartitionRange>> {
        let mut kept = self.lock_ranges();
        if kept.len() != scan.ranges().len() {
            *kept = Arc::new(scan.ranges().to_vec());
        }
        Arc::clone(&kept)
    }

    fn lock_ranges(&self) -> MutexGuard<'_, Arc<Vec<PartitionRange>>> {
        self.ranges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Scan>> {
        self.scan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `f` on the open scan. Call it without the GIL: the lock may wait for another
    /// thread's poll.
    fn with_scan<T>(&self, f: impl FnOnce(&mut Scan) -> PyResult<T>) -> PyResult<T> {
        match self.lock().as_mut() {
            Some(scan) => f(scan),
            None => Err(PyRuntimeError::new_err("the ConsumerManager is closed")),
        }
    }
}
