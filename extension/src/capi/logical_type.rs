use std::ffi::CString;

use libduckdb_sys as ffi;

/// An owned DuckDB logical type.
pub struct LogicalType(ffi::duckdb_logical_type);

impl LogicalType {
    fn primitive(id: ffi::DUCKDB_TYPE) -> Self {
        // SAFETY: creating a logical type of a primitive id has no preconditions.
        Self(unsafe { ffi::duckdb_create_logical_type(id) })
    }

    pub fn varchar() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)
    }

    pub fn integer() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER)
    }

    pub fn bigint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT)
    }

    pub fn boolean() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN)
    }

    pub fn blob() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_BLOB)
    }

    pub fn timestamp_tz() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ)
    }

    /// `STRUCT(name type, …)`.
    pub fn structure(fields: &[(&str, LogicalType)]) -> Self {
        let names: Vec<CString> = fields.iter().map(|(name, _)| c_string(name)).collect();
        let mut name_pointers: Vec<*const std::os::raw::c_char> =
            names.iter().map(|name| name.as_ptr()).collect();
        let mut types: Vec<ffi::duckdb_logical_type> = fields
            .iter()
            .map(|(_, logical_type)| logical_type.0)
            .collect();
        // SAFETY: both arrays hold `fields.len()` live entries; DuckDB copies them.
        Self(unsafe {
            ffi::duckdb_create_struct_type(
                types.as_mut_ptr(),
                name_pointers.as_mut_ptr(),
                fields.len() as ffi::idx_t,
            )
        })
    }

    pub fn interval() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTERVAL)
    }

    /// `LIST(child)`.
    pub fn list(child: &LogicalType) -> Self {
        // SAFETY: `child` is a live logical type; DuckDB copies it.
        Self(unsafe { ffi::duckdb_create_list_type(child.0) })
    }

    /// `MAP(key, value)`.
    pub fn map(key: &LogicalType, value: &LogicalType) -> Self {
        // SAFETY: both are live logical types; DuckDB copies them.
        Self(unsafe { ffi::duckdb_create_map_type(key.0, value.0) })
    }

    pub(crate) fn as_raw(&self) -> ffi::duckdb_logical_type {
        self.0
    }
}

impl Drop for LogicalType {
    fn drop(&mut self) {
        // SAFETY: we own the type and destroy it once.
        unsafe { ffi::duckdb_destroy_logical_type(&mut self.0) }
    }
}

/// Turn a Rust string into a C string for DuckDB, dropping interior NULs (names we pass are
/// our own constants; messages may quote user text).
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}
