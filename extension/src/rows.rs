//! Small result sets computed at init (metadata, offset plans) and handed out a chunk at a
//! time; and the error text every function uses.

use std::sync::Mutex;

use crate::capi::{DataChunk, Vector};

/// Rows fetched at init, handed out in chunks.
pub struct Rows<R> {
    rows: Vec<R>,
    next: Mutex<usize>,
}

impl<R> Rows<R> {
    pub fn new(rows: Vec<R>) -> Self {
        Self {
            rows,
            next: Mutex::new(0),
        }
    }

    /// Write the next rows with `write(row_index_in_chunk, row, columns)`.
    pub fn emit(
        &self,
        output: &mut DataChunk,
        columns: usize,
        mut write: impl FnMut(usize, &R, &[Vector]),
    ) {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let vectors: Vec<Vector> = (0..columns).map(|column| output.vector(column)).collect();
        let end = (*next + DataChunk::capacity()).min(self.rows.len());
        for (row, record) in self.rows[*next..end].iter().enumerate() {
            write(row, record, &vectors);
        }
        output.set_len(end - *next);
        *next = end;
    }
}

/// An engine error as the user sees it: prefixed by the function that raised it.
pub fn error_text(function: &str, error: kafkars_core::Error) -> String {
    format!("{function}: {error}")
}
