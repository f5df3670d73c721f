use std::ffi::CString;

use libduckdb_sys as ffi;

/// An owned DuckDB logical type.
pub struct LogicalType(ffi::duckdb_logical_type);

impl LogicalType {
    fn primitive(id: ffi::DUCKDB_TYPE) -> Self {
        // SAFETY: creating a logical type of a primitive id has no preconditions.
        Self(unsafe { ffi::duckdb_create_logical_type(id) })
    }

    /// The type of a column that is always NULL (DuckDB's `"NULL"` type).
    pub fn sqlnull() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_SQLNULL)
    }

    pub fn tinyint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_TINYINT)
    }

    pub fn smallint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT)
    }

    pub fn utinyint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT)
    }

    pub fn usmallint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT)
    }

    pub fn uinteger() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER)
    }

    pub fn ubigint() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT)
    }

    pub fn float() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_FLOAT)
    }

    pub fn double() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE)
    }

    pub fn date() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_DATE)
    }

    /// TIME: microseconds since midnight.
    pub fn time() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIME)
    }

    /// TIMESTAMP: microseconds since the epoch, no time zone.
    pub fn timestamp() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP)
    }

    /// TIMESTAMP_NS: nanoseconds since the epoch, no time zone.
    pub fn timestamp_ns() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_NS)
    }

    pub fn uuid() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_UUID)
    }

    /// `DECIMAL(width, scale)`; the caller keeps `scale <= width <= 38`.
    pub fn decimal(width: u8, scale: u8) -> Self {
        // SAFETY: no preconditions; DuckDB checks the bounds itself.
        Self(unsafe { ffi::duckdb_create_decimal_type(width, scale) })
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

    /// `UNION(name type, …)`; the caller keeps the names unique and 1 to 256 of them.
    pub fn union(members: &[(&str, LogicalType)]) -> Self {
        let names: Vec<CString> = members.iter().map(|(name, _)| c_string(name)).collect();
        let mut name_pointers: Vec<*const std::os::raw::c_char> =
            names.iter().map(|name| name.as_ptr()).collect();
        let mut types: Vec<ffi::duckdb_logical_type> = members
            .iter()
            .map(|(_, logical_type)| logical_type.0)
            .collect();
        // SAFETY: both arrays hold `members.len()` live entries; DuckDB copies them.
        Self(unsafe {
            ffi::duckdb_create_union_type(
                types.as_mut_ptr(),
                name_pointers.as_mut_ptr(),
                members.len() as ffi::idx_t,
            )
        })
    }

    pub fn interval() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTERVAL)
    }

    /// `ANY`: a named parameter that takes a value of any type, checked by bind (parameters
    /// that accept a MAP or a LIST of STRUCTs).
    pub fn any() -> Self {
        Self::primitive(ffi::DUCKDB_TYPE_DUCKDB_TYPE_ANY)
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
