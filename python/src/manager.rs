//! `RawConsumerManager`: the engine's follow-mode scan for Python. The public class
//! `kafkars.ConsumerManager` wraps it with argument checks and docstrings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafkars_core::{
    batch, DecodeParameters, Fields, PartitionRange, PayloadDecoders, Record, Scan, ScanOptions,
    ScanSelection, StartPolicy, TopicSelection,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::errors::to_py;
use crate::shared::{
    capsules, client_settings, export_batch, open_interruptibly, SIGNAL_CHECK_INTERVAL,
};

/// A follow-mode scan over several topics, each with its own start policy.
#[pyclass(module = "kafkars._internal")]
pub struct RawConsumerManager {
    /// `None` once closed. Locked only without the GIL (see `with_scan`), so two Python threads
    /// polling one manager take turns instead of deadlocking.
    scan: Mutex<Option<Scan>>,
    ranges: Arc<Vec<PartitionRange>>,
    batch_size: usize,
    /// Decode keys and values into typed columns; taken by the thread that builds a batch.
    decoders: Mutex<PayloadDecoders>,
}

#[pymethods]
impl RawConsumerManager {
    /// `topics`: `(name, policy, argument)` with policy `earliest`, `latest`, `timestamp`
    /// (argument: ms since the epoch) or `relative` (argument: ms before now).
    #[new]
    // One argument per keyword of the Python constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        config, topics, cutoff_ms, batch_size, max_buffer_bytes, idle_timeout_ms, timeout_ms,
        *, value_format=None, key_format=None, schema_registry=None,
        schema_registry_config=None, value_schema=None, key_schema=None, value_message=None,
        key_message=None, value_subject=None, key_subject=None, value_schema_id=None,
        key_schema_id=None, on_error=None, json_sample_size=None
    ))]
    fn new(
        py: Python<'_>,
        config: HashMap<String, String>,
        topics: Vec<(String, String, Option<i64>)>,
        cutoff_ms: i64,
        batch_size: usize,
        max_buffer_bytes: usize,
        idle_timeout_ms: u64,
        timeout_ms: u64,
        value_format: Option<String>,
        key_format: Option<String>,
        schema_registry: Option<String>,
        schema_registry_config: Option<Vec<(String, String)>>,
        value_schema: Option<String>,
        key_schema: Option<String>,
        value_message: Option<String>,
        key_message: Option<String>,
        value_subject: Option<String>,
        key_subject: Option<String>,
        value_schema_id: Option<i64>,
        key_schema_id: Option<i64>,
        on_error: Option<String>,
        json_sample_size: Option<i64>,
    ) -> PyResult<Self> {
        if batch_size == 0 {
            return Err(PyValueError::new_err(
                "invalid batch_size: expected a positive number of rows, found 0",
            ));
        }
        let settings = client_settings(config, timeout_ms)?;
        let decoding = DecodeParameters {
            value_format,
            key_format,
            schema_registry,
            schema_registry_config: schema_registry_config.unwrap_or_default(),
            value_schema,
            key_schema,
            value_message,
            key_message,
            value_subject,
            key_subject,
            value_schema_id,
            key_schema_id,
            on_error,
            json_sample_size,
        }
        .into_spec(Some(settings.timeout()))
        .map_err(to_py)?;
        let topics = topic_selections(topics).map_err(to_py)?;
        let selection = ScanSelection::new(topics, None, Some(cutoff_ms)).map_err(to_py)?;
        let options = ScanOptions {
            max_buffer_bytes,
            fields: Fields::ALL,
            follow: true,
            idle_timeout: Duration::from_millis(idle_timeout_ms),
            ordered: true,
        };
        let (scan, decoders) = open_interruptibly(py, settings, selection, options, decoding)?;
        Ok(Self {
            ranges: Arc::new(scan.ranges().to_vec()),
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
        loop {
            let stretch = deadline.min(Instant::now() + SIGNAL_CHECK_INTERVAL);
            let wanted = self.batch_size - records.len();
            py.detach(|| {
                self.with_scan(|scan| {
                    scan.next_records(wanted, &mut records, Some(stretch))
                        .map_err(to_py)
                })
            })?;
            if !records.is_empty() || Instant::now() >= deadline {
                break;
            }
            py.check_signals()?;
        }
        let ranges = Arc::clone(&self.ranges);
        let exported = py.detach(|| {
            let mut decoders = self
                .decoders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let batch = batch::decoded_batch(&ranges, &records, &mut decoders).map_err(to_py)?;
            drop(records);
            export_batch(batch)
        })?;
        capsules(py, exported)
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

/// The Python topics list, `(name, policy, argument)` with policy `earliest`, `latest`,
/// `timestamp` (argument: ms since the epoch) or `relative` (argument: ms before now), as the
/// engine's topic selections.
///
/// # Errors
/// [`kafkars_core::Error::InvalidParameter`] for an unknown policy or a negative relative time.
pub(crate) fn topic_selections(
    topics: Vec<(String, String, Option<i64>)>,
) -> Result<Vec<TopicSelection>, kafkars_core::Error> {
    topics
        .into_iter()
        .map(|(topic, policy, argument)| {
            let start = match (policy.as_str(), argument) {
                ("timestamp", Some(ms)) => {
                    StartPolicy::from_parameters(Some("timestamp"), Some(ms), None)
                }
                ("relative", Some(ms)) => u64::try_from(ms)
                    .map(|ms| StartPolicy::Relative(Duration::from_millis(ms)))
                    .map_err(|_| kafkars_core::Error::InvalidParameter {
                        parameter: "relative time".into(),
                        reason: format!("expected a non-negative number of ms, found {ms}"),
                    }),
                (name, _) => StartPolicy::from_parameters(Some(name), None, None),
            }?;
            Ok(TopicSelection::new(topic, start))
        })
        .collect::<Result<Vec<_>, kafkars_core::Error>>()
}
