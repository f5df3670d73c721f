use libduckdb_sys as ffi;

use super::logical_type::c_string;
use super::table_function::guarded;
use super::{DataChunk, LogicalType, Vector};

/// A scalar function: its signature and the callback DuckDB calls once per chunk of rows.
///
/// Errors show as "Invalid Input Error"; a panic becomes an error and never unwinds into
/// DuckDB.
pub trait ScalarFunction: 'static {
    /// The SQL name.
    const NAME: &'static str;

    /// Types of the parameters, in order.
    fn parameters() -> Vec<LogicalType>;

    /// The type of the result.
    fn return_type() -> LogicalType;

    /// Write one result per row of `input` (`input.len()` rows) into `output`.
    fn execute(input: &DataChunk, output: Vector) -> Result<(), String>;
}

/// Register `F` on `connection`.
///
/// # Safety
/// `connection` must be a live connection and the C API initialised.
pub unsafe fn register_scalar<F: ScalarFunction>(
    connection: ffi::duckdb_connection,
) -> Result<(), String> {
    let mut function = ffi::duckdb_create_scalar_function();
    let name = c_string(F::NAME);
    ffi::duckdb_scalar_function_set_name(function, name.as_ptr());
    for logical_type in F::parameters() {
        ffi::duckdb_scalar_function_add_parameter(function, logical_type.as_raw());
    }
    ffi::duckdb_scalar_function_set_return_type(function, F::return_type().as_raw());
    ffi::duckdb_scalar_function_set_function(function, Some(execute_trampoline::<F>));
    let state = ffi::duckdb_register_scalar_function(connection, function);
    ffi::duckdb_destroy_scalar_function(&mut function);
    if state == ffi::duckdb_state_DuckDBSuccess {
        Ok(())
    } else {
        Err(format!("could not register scalar function {}", F::NAME))
    }
}

unsafe extern "C" fn execute_trampoline<F: ScalarFunction>(
    info: ffi::duckdb_function_info,
    input: ffi::duckdb_data_chunk,
    output: ffi::duckdb_vector,
) {
    let input = DataChunk::from_raw(input);
    let result = guarded(F::NAME, || F::execute(&input, Vector::from_raw(output)));
    if let Err(message) = result {
        let message = c_string(&message);
        ffi::duckdb_scalar_function_set_error(info, message.as_ptr());
    }
}
