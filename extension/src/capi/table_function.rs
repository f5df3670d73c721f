use std::any::Any;
use std::borrow::Cow;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libduckdb_sys as ffi;

use super::logical_type::c_string;
use super::{DataChunk, LogicalType, Value};

/// One result column a bind declares.
pub struct Column {
    pub name: Cow<'static, str>,
    pub logical_type: LogicalType,
}

impl Column {
    /// A column named by a constant or, for columns taken from data, by a `String`.
    pub fn new(name: impl Into<Cow<'static, str>>, logical_type: LogicalType) -> Self {
        Self {
            name: name.into(),
            logical_type,
        }
    }
}

/// A table function: its signature, and the three callbacks DuckDB drives.
///
/// DuckDB calls `bind` once per query (errors show as "Binder Error"), `init` once per scan
/// and `scan` repeatedly until it leaves its chunk empty (errors from both show as "Invalid
/// Input Error"). Bind data and state are shared by every thread of a scan, hence `Sync`.
/// An error is a message for the person at the SQL prompt; a panic becomes an error too and
/// never unwinds into DuckDB.
pub trait TableFunction: 'static {
    /// What `bind` decided: the checked parameters.
    type BindData: Send + Sync + 'static;
    /// The scan's state.
    type State: Send + Sync + 'static;
    /// One scanning thread's own state; `()` for functions that scan on one thread.
    type LocalState: Default + Send + 'static;

    /// The SQL name.
    const NAME: &'static str;

    /// Whether DuckDB may ask for only some columns (see [`InitInput::projected_columns`]).
    const PROJECTION_PUSHDOWN: bool = false;

    /// Types of the positional parameters, in order.
    fn positional() -> Vec<LogicalType>;

    /// Names and types of the named parameters.
    fn named() -> Vec<(&'static str, LogicalType)>;

    /// Check the arguments and declare the result columns.
    fn bind(input: &BindInput) -> Result<(Vec<Column>, Self::BindData), String>;

    /// Start a scan.
    fn init(bind: &Self::BindData, input: &InitInput) -> Result<Self::State, String>;

    /// How many threads may call `scan` at once, each with its own local state; asked once,
    /// after `init`.
    fn max_threads(_bind: &Self::BindData, _state: &Self::State) -> u64 {
        1
    }

    /// Fill `output` with the next rows; leaving it empty ends this thread's part of the scan.
    /// Each call must return within a bounded time: an interrupt only takes effect between
    /// calls.
    fn scan(
        bind: &Self::BindData,
        state: &Self::State,
        local: &mut Self::LocalState,
        output: &mut DataChunk,
    ) -> Result<(), String>;
}

/// The arguments of a call, as bind sees them.
pub struct BindInput {
    info: ffi::duckdb_bind_info,
}

impl BindInput {
    /// The `index`-th positional argument.
    pub fn positional(&self, index: usize) -> Option<Value> {
        // SAFETY: info is live during bind; the returned value is ours to destroy.
        unsafe {
            Value::from_raw(ffi::duckdb_bind_get_parameter(
                self.info,
                index as ffi::idx_t,
            ))
        }
    }

    /// The named argument `name`, or `None` when the call did not give it.
    pub fn named(&self, name: &str) -> Option<Value> {
        let name = c_string(name);
        // SAFETY: info is live during bind; the returned value (or null) is ours to destroy.
        unsafe {
            Value::from_raw(ffi::duckdb_bind_get_named_parameter(
                self.info,
                name.as_ptr(),
            ))
        }
    }
}

/// What init sees of the query.
pub struct InitInput {
    info: ffi::duckdb_init_info,
}

impl InitInput {
    /// The indexes (into bind's columns) of the columns the query reads, in the order the
    /// output chunk holds them. With projection pushdown off, every column. An index past the
    /// declared columns stands for DuckDB's row id (asked for by `count(*)`), which has no
    /// data to fill.
    pub fn projected_columns(&self) -> Vec<usize> {
        // SAFETY: info is live during init.
        unsafe {
            let count = ffi::duckdb_init_get_column_count(self.info);
            (0..count)
                .map(|i| ffi::duckdb_init_get_column_index(self.info, i) as usize)
                .collect()
        }
    }
}

/// Register `T` on `connection`.
///
/// # Safety
/// `connection` must be a live connection and the C API initialised.
pub unsafe fn register<T: TableFunction>(connection: ffi::duckdb_connection) -> Result<(), String> {
    let mut function = ffi::duckdb_create_table_function();
    let name = c_string(T::NAME);
    ffi::duckdb_table_function_set_name(function, name.as_ptr());
    for logical_type in T::positional() {
        ffi::duckdb_table_function_add_parameter(function, logical_type.as_raw());
    }
    for (parameter, logical_type) in T::named() {
        let parameter = c_string(parameter);
        ffi::duckdb_table_function_add_named_parameter(
            function,
            parameter.as_ptr(),
            logical_type.as_raw(),
        );
    }
    ffi::duckdb_table_function_set_bind(function, Some(bind_trampoline::<T>));
    ffi::duckdb_table_function_set_init(function, Some(init_trampoline::<T>));
    ffi::duckdb_table_function_set_local_init(function, Some(local_init_trampoline::<T>));
    ffi::duckdb_table_function_set_function(function, Some(scan_trampoline::<T>));
    ffi::duckdb_table_function_supports_projection_pushdown(function, T::PROJECTION_PUSHDOWN);
    let state = ffi::duckdb_register_table_function(connection, function);
    ffi::duckdb_destroy_table_function(&mut function);
    if state == ffi::duckdb_state_DuckDBSuccess {
        Ok(())
    } else {
        Err(format!("could not register table function {}", T::NAME))
    }
}

/// Run a callback, turning a panic into an error message so it never unwinds into DuckDB.
pub(super) fn guarded<R>(
    function: &str,
    body: impl FnOnce() -> Result<R, String>,
) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        Err(format!(
            "{function}: internal error (a bug in kafkars, please report it): {}",
            panic_message(&*panic)
        ))
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

unsafe extern "C" fn drop_boxed<D>(data: *mut c_void) {
    if !data.is_null() {
        drop(Box::from_raw(data.cast::<D>()));
    }
}

unsafe extern "C" fn bind_trampoline<T: TableFunction>(info: ffi::duckdb_bind_info) {
    match guarded(T::NAME, || T::bind(&BindInput { info })) {
        Ok((columns, data)) => {
            for column in columns {
                let name = c_string(&column.name);
                ffi::duckdb_bind_add_result_column(
                    info,
                    name.as_ptr(),
                    column.logical_type.as_raw(),
                );
            }
            let data = Box::into_raw(Box::new(data));
            ffi::duckdb_bind_set_bind_data(info, data.cast(), Some(drop_boxed::<T::BindData>));
        }
        Err(message) => {
            let message = c_string(&message);
            ffi::duckdb_bind_set_error(info, message.as_ptr());
        }
    }
}

unsafe extern "C" fn init_trampoline<T: TableFunction>(info: ffi::duckdb_init_info) {
    let bind = ffi::duckdb_init_get_bind_data(info).cast::<T::BindData>();
    let result = guarded(T::NAME, || match bind.as_ref() {
        Some(bind) => T::init(bind, &InitInput { info }),
        None => Err(format!("{}: init without bind data", T::NAME)),
    });
    match result {
        Ok(state) => {
            let threads = bind.as_ref().map_or(1, |bind| T::max_threads(bind, &state));
            ffi::duckdb_init_set_max_threads(info, threads.max(1));
            let state = Box::into_raw(Box::new(state));
            ffi::duckdb_init_set_init_data(info, state.cast(), Some(drop_boxed::<T::State>));
        }
        Err(message) => {
            let message = c_string(&message);
            ffi::duckdb_init_set_error(info, message.as_ptr());
        }
    }
}

unsafe extern "C" fn local_init_trampoline<T: TableFunction>(info: ffi::duckdb_init_info) {
    let local = Box::into_raw(Box::<T::LocalState>::default());
    ffi::duckdb_init_set_init_data(info, local.cast(), Some(drop_boxed::<T::LocalState>));
}

unsafe extern "C" fn scan_trampoline<T: TableFunction>(
    info: ffi::duckdb_function_info,
    output: ffi::duckdb_data_chunk,
) {
    let bind = ffi::duckdb_function_get_bind_data(info).cast::<T::BindData>();
    let state = ffi::duckdb_function_get_init_data(info).cast::<T::State>();
    // Each thread has its own local state: DuckDB never shares one between threads.
    let local = ffi::duckdb_function_get_local_init_data(info).cast::<T::LocalState>();
    let mut chunk = DataChunk::from_raw(output);
    let result = guarded(T::NAME, || {
        match (bind.as_ref(), state.as_ref(), local.as_mut()) {
            (Some(bind), Some(state), Some(local)) => T::scan(bind, state, local, &mut chunk),
            _ => Err(format!("{}: scan without bind data or state", T::NAME)),
        }
    });
    if let Err(message) = result {
        chunk.set_len(0);
        let message = c_string(&message);
        ffi::duckdb_function_set_error(info, message.as_ptr());
    }
}
