//! The Rust side of the exception guard (csrc/ffi_guard.cpp): llama.cpp's decode runs
//! inside a C++ try block, and what it threw comes back here as text for the request's
//! error, instead of unwinding into Rust and aborting the process.

use std::ffi::{c_char, CStr};

extern "C" {
    fn hearth_ffi_take_exception() -> *const c_char;
    #[cfg(test)]
    fn hearth_ffi_batch_size() -> usize;
}

/// The message of the exception llama.cpp threw last on this thread, if it threw since the
/// last call.
pub(crate) fn take_exception() -> Option<String> {
    // SAFETY: the guard returns NULL or a NUL-terminated thread-local buffer that stays valid
    // until this thread's next call, and it is copied out at once.
    let text = unsafe { hearth_ffi_take_exception() };
    (!text.is_null()).then(|| unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned())
}

/// Size of the guard's copy of `llama_batch`, to check it against the bindings.
#[cfg(test)]
fn guard_batch_size() -> usize {
    // SAFETY: a pure function of the C++ type.
    unsafe { hearth_ffi_batch_size() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guards_batch_matches_llama_cpps() {
        assert_eq!(guard_batch_size(), std::mem::size_of::<llama_cpp_sys_2::llama_batch>());
        assert_eq!(take_exception(), None);
    }
}
