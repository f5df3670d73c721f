use std::ffi::CStr;

use libduckdb_sys as ffi;

/// An owned DuckDB value, as handed to a table function's bind for one of its arguments.
pub struct Value(ffi::duckdb_value);

impl Value {
    /// Take ownership of a value returned by the C API; `None` for a null pointer (a named
    /// parameter that was not given).
    ///
    /// # Safety
    /// `raw` must be null or a value the caller owns and nobody else destroys.
    pub(crate) unsafe fn from_raw(raw: ffi::duckdb_value) -> Option<Self> {
        (!raw.is_null()).then_some(Self(raw))
    }

    /// Whether the value is SQL NULL. Must be checked before reading: reading a NULL through
    /// the typed getters is an internal error in DuckDB.
    pub fn is_null(&self) -> bool {
        // SAFETY: self.0 is a live value.
        unsafe { ffi::duckdb_is_null_value(self.0) }
    }

    /// The value as text (VARCHAR parameters, MAP keys and values).
    pub fn to_text(&self) -> String {
        // SAFETY: self.0 is live; the returned string is owned by us and freed with duckdb_free.
        unsafe {
            let raw = ffi::duckdb_get_varchar(self.0);
            if raw.is_null() {
                return String::new();
            }
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            ffi::duckdb_free(raw.cast());
            text
        }
    }

    /// The bytes of a BLOB value.
    pub fn to_blob(&self) -> Vec<u8> {
        // SAFETY: self.0 is live; the parameter was declared BLOB so DuckDB cast it. The
        // returned buffer is ours and freed with duckdb_free.
        unsafe {
            let blob = ffi::duckdb_get_blob(self.0);
            if blob.data.is_null() {
                return Vec::new();
            }
            let bytes =
                std::slice::from_raw_parts(blob.data.cast::<u8>(), blob.size as usize).to_vec();
            ffi::duckdb_free(blob.data);
            bytes
        }
    }

    /// An INTERVAL as `(months, days, micros)`.
    pub fn to_interval(&self) -> (i32, i32, i64) {
        // SAFETY: self.0 is live; the parameter was declared INTERVAL so DuckDB cast it.
        let interval = unsafe { ffi::duckdb_get_interval(self.0) };
        (interval.months, interval.days, interval.micros)
    }

    /// A BOOLEAN value.
    pub fn to_bool(&self) -> bool {
        // SAFETY: self.0 is live; the parameter was declared BOOLEAN so DuckDB cast it.
        unsafe { ffi::duckdb_get_bool(self.0) }
    }

    /// An integer value (INTEGER, BIGINT parameters and list elements).
    pub fn to_i64(&self) -> i64 {
        // SAFETY: self.0 is live; DuckDB casts integer types to BIGINT.
        unsafe { ffi::duckdb_get_int64(self.0) }
    }

    /// A TIMESTAMP WITH TIME ZONE as microseconds since the epoch.
    pub fn to_timestamp_micros(&self) -> i64 {
        // SAFETY: self.0 is live; the parameter was declared TIMESTAMPTZ so DuckDB cast it.
        unsafe { ffi::duckdb_get_timestamp_tz(self.0).micros }
    }

    /// The elements of a LIST value, in order.
    pub fn list_elements(&self) -> Vec<Value> {
        // SAFETY: self.0 is a live LIST value; the child getter returns owned values.
        unsafe {
            let size = ffi::duckdb_get_list_size(self.0);
            (0..size)
                .filter_map(|index| Value::from_raw(ffi::duckdb_get_list_child(self.0, index)))
                .collect()
        }
    }

    /// The entries of a MAP value, in order.
    pub fn map_entries(&self) -> Vec<(Value, Value)> {
        // SAFETY: self.0 is a live MAP value; the key/value getters return owned values.
        unsafe {
            let size = ffi::duckdb_get_map_size(self.0);
            (0..size)
                .filter_map(|index| {
                    let key = Value::from_raw(ffi::duckdb_get_map_key(self.0, index))?;
                    let value = Value::from_raw(ffi::duckdb_get_map_value(self.0, index))?;
                    Some((key, value))
                })
                .collect()
        }
    }
}

/// The shape of a value given to an `ANY` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Text,
    List,
    Map,
    Struct,
    Other,
}

impl Value {
    /// What kind of value this is.
    pub fn kind(&self) -> Kind {
        // SAFETY: self.0 is live; the type is borrowed from the value, not ours to destroy.
        let id = unsafe { ffi::duckdb_get_type_id(ffi::duckdb_get_value_type(self.0)) };
        match id {
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_TINYINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_HUGEINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER
            | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT => Kind::Integer,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR => Kind::Text,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST => Kind::List,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_MAP => Kind::Map,
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_STRUCT => Kind::Struct,
            _ => Kind::Other,
        }
    }

    /// The fields of a STRUCT value, by name, in order.
    pub fn struct_fields(&self) -> Vec<(String, Value)> {
        // SAFETY: self.0 is a live STRUCT value; its type is borrowed from the value; names
        // are ours to free; the child getter returns owned values.
        unsafe {
            let logical_type = ffi::duckdb_get_value_type(self.0);
            let count = ffi::duckdb_struct_type_child_count(logical_type);
            (0..count)
                .filter_map(|index| {
                    let raw = ffi::duckdb_struct_type_child_name(logical_type, index);
                    let name = if raw.is_null() {
                        String::new()
                    } else {
                        let name = CStr::from_ptr(raw).to_string_lossy().into_owned();
                        ffi::duckdb_free(raw.cast());
                        name
                    };
                    Value::from_raw(ffi::duckdb_get_struct_child(self.0, index))
                        .map(|child| (name, child))
                })
                .collect()
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: we own the value and destroy it once.
        unsafe { ffi::duckdb_destroy_value(&mut self.0) }
    }
}
