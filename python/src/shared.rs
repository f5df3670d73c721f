//! What the bindings share: opening a scan without holding the GIL, client settings from a
//! Python `config` dict, the decoding keywords, and handing Arrow batches to Python.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use arrow_array::ffi::FFI_ArrowArray;
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::ffi::FFI_ArrowSchema;
use kafkars_core::{
    ClientSettings, DecodeParameters, DecodeSpec, PayloadDecoders, Scan, ScanOptions, ScanSelection,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::errors::to_py;

/// How long one stretch of a poll may run without the GIL before signals are checked, so that
/// Ctrl-C interrupts a long poll promptly.
pub(crate) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Open the scan on a thread of its own and wait for it without the GIL (see
/// [`run_interruptibly`]): reader schemas first (a registry that is down fails before any
/// fetching), then the scan.
pub(crate) fn open_interruptibly(
    py: Python<'_>,
    settings: ClientSettings,
    selection: ScanSelection,
    options: ScanOptions,
    decoding: DecodeSpec,
) -> PyResult<(Scan, PayloadDecoders)> {
    run_interruptibly(py, move || {
        let decoders = PayloadDecoders::for_scan(&decoding, &settings, &selection)?;
        Scan::open(&settings, &selection, options).map(|scan| (scan, decoders))
    })
}

/// Run `work` (opening a scan: resolving offsets can wait up to the timeout for brokers) on a
/// thread of its own and wait for it without the GIL, checking signals every
/// [`SIGNAL_CHECK_INTERVAL`] so that Ctrl-C interrupts the wait. Abandoned work finishes in
/// the background and its result is dropped.
pub(crate) fn run_interruptibly<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> kafkars_core::Result<T> + Send + 'static,
) -> PyResult<T> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("kafkars-open".into())
        .spawn(move || {
            // The receiver is gone when the caller was interrupted.
            let _ = sender.send(work());
        })
        .map_err(|error| PyRuntimeError::new_err(format!("could not start a thread: {error}")))?;
    let mut receiver = receiver;
    loop {
        // The receiver moves into the GIL-free closure and back: it is `Send`, not `Sync`.
        let (received, returned) = py.detach(move || {
            let received = receiver.recv_timeout(SIGNAL_CHECK_INTERVAL);
            (received, receiver)
        });
        receiver = returned;
        match received {
            Ok(done) => return done.map_err(to_py),
            Err(mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "kafkars: opening the scan failed unexpectedly (a bug, please report it)",
                ))
            }
        }
    }
}

/// Client settings from the `config` dict (librdkafka properties, already strings) and a
/// timeout in ms.
pub(crate) fn client_settings(
    config: HashMap<String, String>,
    timeout_ms: u64,
) -> PyResult<ClientSettings> {
    ClientSettings::builder()
        .properties(config)
        .timeout(Duration::from_millis(timeout_ms))
        .build()
        .map_err(to_py)
}

/// A positive `batch_size` (rows), or the error that names it.
pub(crate) fn positive_batch_size(batch_size: usize) -> PyResult<usize> {
    if batch_size == 0 {
        return Err(PyValueError::new_err(
            "invalid batch_size: expected a positive number of rows, found 0",
        ));
    }
    Ok(batch_size)
}

/// The decoding keywords, as one dict: what `kafkars.manager.decoding_arguments` returns, its
/// keys the fields of [`DecodeParameters`]. The Python package checks their types; the
/// engine checks their meaning in [`DecodingArguments::into_spec`].
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct DecodingArguments {
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
}

impl DecodingArguments {
    /// The checked decoding of a read whose registry requests wait up to `settings`' timeout.
    pub(crate) fn into_spec(self, settings: &ClientSettings) -> PyResult<DecodeSpec> {
        DecodeParameters {
            value_format: self.value_format,
            key_format: self.key_format,
            schema_registry: self.schema_registry,
            schema_registry_config: self.schema_registry_config.unwrap_or_default(),
            value_schema: self.value_schema,
            key_schema: self.key_schema,
            value_message: self.value_message,
            key_message: self.key_message,
            value_subject: self.value_subject,
            key_subject: self.key_subject,
            value_schema_id: self.value_schema_id,
            key_schema_id: self.key_schema_id,
            on_error: self.on_error,
            json_sample_size: self.json_sample_size,
        }
        .into_spec(Some(settings.timeout()))
        .map_err(to_py)
    }
}

/// A batch in the Arrow C data interface, ready for [`capsules`]. Runs without the GIL.
pub(crate) fn export_batch(batch: RecordBatch) -> PyResult<(FFI_ArrowArray, FFI_ArrowSchema)> {
    let data = StructArray::from(batch).into_data();
    let schema = FFI_ArrowSchema::try_from(data.data_type())
        .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
    Ok((FFI_ArrowArray::new(&data), schema))
}

/// The capsules `(schema, array)` that `pyarrow.RecordBatch._import_from_c_capsule` takes.
pub(crate) fn capsules<'py>(
    py: Python<'py>,
    (array, schema): (FFI_ArrowArray, FFI_ArrowSchema),
) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
    Ok((
        PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
        PyCapsule::new_with_value(py, array, c"arrow_array")?,
    ))
}
