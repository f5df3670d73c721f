//! The one place engine errors become Python exceptions: bad arguments are `ValueError`,
//! everything Kafka-side is `kafkars.KafkarsError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::PyErr;

create_exception!(
    _internal,
    KafkarsError,
    PyException,
    "Raised when Kafka can't be read: brokers unreachable, a topic missing, a fetch failing."
);

/// Convert an engine error.
pub fn to_py(error: kafkars_core::Error) -> PyErr {
    match error {
        kafkars_core::Error::InvalidParameter { .. }
        | kafkars_core::Error::ForbiddenConfig { .. }
        | kafkars_core::Error::ClientCreation { .. } => PyValueError::new_err(error.to_string()),
        other => KafkarsError::new_err(other.to_string()),
    }
}
