//! The one place engine errors become Python exceptions: bad arguments are `ValueError`,
//! everything Kafka-side is `kafkars.KafkarsError`, with `DecodeError` (a record that can't be
//! decoded) and `SchemaRegistryError` (the registry unreachable or refusing) beneath it.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::PyErr;

create_exception!(
    _internal,
    KafkarsError,
    PyException,
    "Raised when Kafka can't be read: brokers unreachable, a topic missing, a fetch failing."
);

create_exception!(
    _internal,
    DecodeError,
    KafkarsError,
    "Raised when a key or value can't be decoded with on_error='fail', or a schema can't be used."
);

create_exception!(
    _internal,
    SchemaRegistryError,
    KafkarsError,
    "Raised when the Schema Registry can't be reached or answers with an error."
);

/// Convert an engine error.
pub fn to_py(error: kafkars_core::Error) -> PyErr {
    match error {
        kafkars_core::Error::InvalidParameter { .. }
        | kafkars_core::Error::ForbiddenConfig { .. }
        | kafkars_core::Error::ClientCreation { .. } => PyValueError::new_err(error.to_string()),
        kafkars_core::Error::Decode { .. } | kafkars_core::Error::Schema { .. } => {
            DecodeError::new_err(error.to_string())
        }
        kafkars_core::Error::Registry { .. } => SchemaRegistryError::new_err(error.to_string()),
        other => KafkarsError::new_err(other.to_string()),
    }
}
