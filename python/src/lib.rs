//! `kafkars._internal`: the compiled half of the Python package.
//!
//! Bindings only: each function converts its arguments, releases the GIL, calls
//! `kafkars_core` and converts the result. Docstrings and conveniences live in the Python
//! package (`kafkars/`), and `kafkars/_internal.pyi` mirrors this module.

mod errors;
mod manager;
mod plan;
mod selection;
mod shared;

use pyo3::prelude::*;

/// The version of librdkafka compiled into kafkars, e.g. "2.12.1".
#[pyfunction]
fn librdkafka_version() -> String {
    kafkars_core::librdkafka_version()
}

#[pymodule]
fn _internal(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", kafkars_core::VERSION)?;
    module.add(
        "KafkarsError",
        module.py().get_type::<errors::KafkarsError>(),
    )?;
    module.add("DecodeError", module.py().get_type::<errors::DecodeError>())?;
    module.add(
        "SchemaRegistryError",
        module.py().get_type::<errors::SchemaRegistryError>(),
    )?;
    module.add_function(wrap_pyfunction!(librdkafka_version, module)?)?;
    module.add_class::<manager::RawConsumerManager>()?;
    module.add_class::<plan::RawRangeReader>()?;
    module.add_function(wrap_pyfunction!(plan::plan, module)?)?;
    Ok(())
}
