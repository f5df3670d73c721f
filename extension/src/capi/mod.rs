//! A small safe layer over DuckDB's stable C API (v1.5.6), just what the table and scalar functions need.
//!
//! duckdb-rs's own `vtab` layer cannot read INTERVAL or MAP parameters nor register a local
//! init, so kafkars registers its table functions over the raw C API here, in one place. The
//! function pointers behind `libduckdb_sys` are filled in by the entry point at load time.

mod chunk;
mod logical_type;
mod scalar_function;
mod table_function;
mod value;

pub use chunk::{DataChunk, Vector};
pub use logical_type::LogicalType;
pub use scalar_function::{register_scalar, ScalarFunction};
pub use table_function::{register, BindInput, Column, InitInput, TableFunction};
pub use value::{Kind, Value};
