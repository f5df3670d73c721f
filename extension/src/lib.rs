//! The kafkars DuckDB extension: SQL over Apache Kafka.
//!
//! This crate is the SQL skin of `kafkars_core`: it declares the table functions and
//! `kafka_version()`, reads their arguments and writes rows into DuckDB vectors. Every Kafka
//! rule lives in the core.
//!
//! It targets DuckDB's stable C API v1.5.6 (`C_STRUCT` ABI), so one build loads in every DuckDB
//! from 1.5.6 on, the Python 2.0 package included. The loadable file is this cdylib with
//! DuckDB's metadata footer appended by `extension/package.py`.

mod arrow;
mod capi;
mod diagnostic_functions;
mod metadata_functions;
mod params;
mod rows;
mod scan_functions;
mod version_function;

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libduckdb_sys as ffi;

/// The oldest DuckDB C API this extension asks for.
const MIN_DUCKDB_C_API: &str = "v1.5.6";

/// Entry point DuckDB calls on `LOAD`: `<file base name>_init_c_api`. It only registers the
/// functions; a panic must not cross into DuckDB, so everything runs under `catch_unwind`.
///
/// # Safety
/// Called by DuckDB with valid `info` and `access` pointers.
#[no_mangle]
pub unsafe extern "C" fn kafkars_init_c_api(
    info: ffi::duckdb_extension_info,
    access: *const ffi::duckdb_extension_access,
) -> bool {
    let outcome = catch_unwind(AssertUnwindSafe(|| init(info, access)))
        .unwrap_or_else(|_| Err("kafkars: panic while loading the extension".to_owned()));
    match outcome {
        Ok(loaded) => loaded,
        Err(message) => {
            if let Some(set_error) = access.as_ref().and_then(|access| access.set_error) {
                let message = CString::new(message.replace('\0', "")).unwrap_or_default();
                set_error(info, message.as_ptr());
            }
            false
        }
    }
}

unsafe fn init(
    info: ffi::duckdb_extension_info,
    access: *const ffi::duckdb_extension_access,
) -> Result<bool, String> {
    // Fill in the C API function table; `false` means DuckDB is older than we need and has
    // already said so.
    if !ffi::duckdb_rs_extension_api_init(info, access, MIN_DUCKDB_C_API)
        .map_err(|error| format!("kafkars: {error}"))?
    {
        return Ok(false);
    }
    let get_database = (*access)
        .get_database
        .ok_or("kafkars: DuckDB did not provide get_database")?;
    let database = get_database(info);
    if database.is_null() {
        return Err("kafkars: DuckDB provided no database".into());
    }
    // A connection of our own for registration only: the database handle is not ours to keep.
    let mut connection: ffi::duckdb_connection = std::ptr::null_mut();
    if ffi::duckdb_connect(*database, &mut connection) != ffi::duckdb_state_DuckDBSuccess {
        return Err("kafkars: could not connect to the database to register functions".into());
    }
    let registered = capi::register::<metadata_functions::KafkaTopics>(connection)
        .and_then(|()| capi::register::<metadata_functions::KafkaPartitions>(connection))
        .and_then(|()| capi::register::<scan_functions::KafkaScan>(connection))
        .and_then(|()| capi::register::<scan_functions::KafkaOffsets>(connection))
        .and_then(|()| capi::register::<diagnostic_functions::KafkarsArrowIpc>(connection))
        .and_then(|()| capi::register_scalar::<version_function::KafkaVersion>(connection));
    ffi::duckdb_disconnect(&mut connection);
    registered.map(|()| true)
}
