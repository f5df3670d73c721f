use libduckdb_sys as ffi;

/// The output chunk a table function's scan fills.
pub struct DataChunk(ffi::duckdb_data_chunk);

impl DataChunk {
    pub(crate) fn from_raw(raw: ffi::duckdb_data_chunk) -> Self {
        Self(raw)
    }

    /// How many rows a chunk holds at most (DuckDB's vector size, 2048).
    pub fn capacity() -> usize {
        // SAFETY: no preconditions.
        unsafe { ffi::duckdb_vector_size() as usize }
    }

    /// The output vector of the `column`-th projected column.
    pub fn vector(&self, column: usize) -> Vector {
        // SAFETY: the chunk is live for the scan call; DuckDB bounds-checks nothing, so callers
        // only pass indexes of columns they declared.
        Vector(unsafe { ffi::duckdb_data_chunk_get_vector(self.0, column as ffi::idx_t) })
    }

    /// How many rows were written.
    pub fn len(&self) -> usize {
        // SAFETY: the chunk is live for the scan call.
        unsafe { ffi::duckdb_data_chunk_get_size(self.0) as usize }
    }

    /// Set how many rows were written. A scan that leaves 0 rows ends the table function.
    pub fn set_len(&mut self, rows: usize) {
        // SAFETY: the chunk is live; `rows` never exceeds `capacity()` by construction.
        unsafe { ffi::duckdb_data_chunk_set_size(self.0, rows as ffi::idx_t) }
    }
}

/// One output column of a chunk.
#[derive(Clone, Copy)]
pub struct Vector(ffi::duckdb_vector);

impl Vector {
    pub(crate) fn from_raw(raw: ffi::duckdb_vector) -> Self {
        Self(raw)
    }

    /// Write text (VARCHAR) or bytes (BLOB) into `row`; DuckDB copies them.
    pub fn set_bytes(&self, row: usize, bytes: &[u8]) {
        // SAFETY: the vector is live and `row` < chunk capacity; DuckDB copies `bytes`.
        unsafe {
            ffi::duckdb_vector_assign_string_element_len(
                self.0,
                row as ffi::idx_t,
                bytes.as_ptr().cast(),
                bytes.len() as ffi::idx_t,
            )
        }
    }

    /// Write a fixed-width value into `row`.
    ///
    /// # Safety
    /// `T` must be the physical type of the column (`i32` for INTEGER, `i64` for BIGINT and
    /// TIMESTAMP, `bool` for BOOLEAN) and `row` below the chunk capacity.
    pub unsafe fn set<T: Copy>(&self, row: usize, value: T) {
        let data = ffi::duckdb_vector_get_data(self.0).cast::<T>();
        data.add(row).write(value);
    }

    /// Mark `row` NULL.
    pub fn set_null(&self, row: usize) {
        // SAFETY: the vector is live; ensure_validity_writable allocates the mask if needed.
        unsafe {
            ffi::duckdb_vector_ensure_validity_writable(self.0);
            let validity = ffi::duckdb_vector_get_validity(self.0);
            ffi::duckdb_validity_set_row_invalid(validity, row as ffi::idx_t);
        }
    }

    /// The `index`-th field of a STRUCT vector.
    pub fn struct_field(&self, index: usize) -> Vector {
        // SAFETY: the vector is a live STRUCT vector with more than `index` fields.
        Vector(unsafe { ffi::duckdb_struct_vector_get_child(self.0, index as ffi::idx_t) })
    }

    /// The start of the vector's data, as an array of `T`.
    ///
    /// # Safety
    /// `T` must be the physical type of the vector (`i32` for INTEGER and DATE, `i64` for
    /// BIGINT, TIME and TIMESTAMP, `u8` for BOOLEAN, [`ffi::duckdb_interval`] for INTERVAL, a
    /// 16-byte little-endian integer for HUGEINT, UUID and wide DECIMAL), and the caller
    /// stays below the vector's capacity. It may not be aligned for 16-byte `T`: use
    /// unaligned writes there.
    pub unsafe fn data<T>(&self) -> *mut T {
        ffi::duckdb_vector_get_data(self.0).cast::<T>()
    }

    /// The vector's validity mask, made writable: every row valid until marked.
    pub fn validity(&self) -> Validity {
        // SAFETY: the vector is live; ensure_validity_writable allocates the mask (for the
        // vector's current capacity) if there is none yet.
        unsafe {
            ffi::duckdb_vector_ensure_validity_writable(self.0);
            Validity(ffi::duckdb_vector_get_validity(self.0))
        }
    }

    /// The child vector of a LIST (or MAP) vector. Look it up again after
    /// [`Vector::list_reserve`]: a reserve may replace its buffers.
    pub fn list_child(&self) -> Vector {
        // SAFETY: the vector is a live LIST or MAP vector.
        Vector(unsafe { ffi::duckdb_list_vector_get_child(self.0) })
    }

    /// How many elements the child of a LIST vector holds.
    pub fn list_len(&self) -> usize {
        // SAFETY: the vector is a live LIST or MAP vector.
        unsafe { ffi::duckdb_list_vector_get_size(self.0) as usize }
    }

    /// Make room for `capacity` elements in the child of a LIST vector (nested children
    /// included).
    pub fn list_reserve(&self, capacity: usize) {
        // SAFETY: the vector is a live LIST or MAP vector.
        unsafe { ffi::duckdb_list_vector_reserve(self.0, capacity as ffi::idx_t) };
    }

    /// Set how many elements the child of a LIST vector holds.
    ///
    /// # Safety
    /// `len` must not exceed what [`Vector::list_reserve`] made room for.
    pub unsafe fn set_list_len(&self, len: usize) {
        ffi::duckdb_list_vector_set_size(self.0, len as ffi::idx_t);
    }

    /// A writer for a LIST column.
    pub fn list(&self) -> ListWriter {
        ListWriter {
            list: self.0,
            len: 0,
        }
    }
}

/// Appends rows to a LIST vector: each row's elements go to the end of the child vector and
/// the row's entry records where they lie.
pub struct ListWriter {
    list: ffi::duckdb_vector,
    len: u64,
}

impl ListWriter {
    /// Make room for `count` more elements and record them as `row`'s list; returns the
    /// child vector and the index of the first new element in it. The caller writes exactly
    /// `count` elements there.
    pub fn append_row(&mut self, row: usize, count: usize) -> (Vector, usize) {
        let offset = self.len;
        let length = count as u64;
        // SAFETY: the list vector is live and `row` below the chunk capacity; the child is
        // looked up after the reserve, which may move its buffer.
        unsafe {
            ffi::duckdb_list_vector_reserve(self.list, offset + length);
            ffi::duckdb_list_vector_set_size(self.list, offset + length);
            let entries = ffi::duckdb_vector_get_data(self.list).cast::<ffi::duckdb_list_entry>();
            entries
                .add(row)
                .write(ffi::duckdb_list_entry { offset, length });
            self.len = offset + length;
            (
                Vector(ffi::duckdb_list_vector_get_child(self.list)),
                offset as usize,
            )
        }
    }

    /// Write a LIST of fixed-width elements into `row`.
    ///
    /// # Safety
    /// `T` must be the physical type of the list's child column, and `row` below the chunk
    /// capacity.
    pub unsafe fn set<T: Copy>(&mut self, row: usize, elements: &[T]) {
        let offset = self.len;
        let length = elements.len() as u64;
        ffi::duckdb_list_vector_reserve(self.list, offset + length);
        // The child's buffer may move on reserve: look it up afterwards.
        let child = ffi::duckdb_list_vector_get_child(self.list);
        let data = ffi::duckdb_vector_get_data(child).cast::<T>();
        std::ptr::copy_nonoverlapping(elements.as_ptr(), data.add(offset as usize), elements.len());
        self.len = offset + length;
        ffi::duckdb_list_vector_set_size(self.list, self.len);
        let entries = ffi::duckdb_vector_get_data(self.list).cast::<ffi::duckdb_list_entry>();
        entries
            .add(row)
            .write(ffi::duckdb_list_entry { offset, length });
    }
}

/// A vector's validity mask: one bit per row, set when the row is valid (DuckDB's layout:
/// row `r` is bit `r % 64` of word `r / 64`, the same bit order as Arrow's).
pub struct Validity(*mut u64);

impl Validity {
    /// Mark `row` NULL.
    ///
    /// # Safety
    /// `row` must be below the capacity the vector had when the mask was obtained.
    pub unsafe fn set_invalid(&self, row: usize) {
        *self.0.add(row / 64) &= !(1u64 << (row % 64));
    }

    /// AND `bits` into the 64 rows starting at `64 * word`.
    ///
    /// # Safety
    /// Row `64 * word` must be below the capacity the vector had when the mask was obtained.
    pub unsafe fn and_word(&self, word: usize, bits: u64) {
        *self.0.add(word) &= bits;
    }
}
