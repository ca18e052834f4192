//! Routes llama.cpp's and ggml's log lines into `tracing` (target `llama_cpp`), and keeps the
//! last warnings and errors of each thread so a failed load can say why it failed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

use llama_cpp_sys_2::{
    ggml_log_level, GGML_LOG_LEVEL_CONT, GGML_LOG_LEVEL_DEBUG, GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_INFO,
    GGML_LOG_LEVEL_WARN,
};

const KEPT_LINES: usize = 16;

#[derive(Default)]
struct ThreadLog {
    /// A line llama.cpp has started but not finished (it logs some lines in pieces).
    partial: String,
    level: ggml_log_level,
    /// Recent warnings and errors, oldest first.
    recent: VecDeque<String>,
}

thread_local! {
    static LOG: RefCell<ThreadLog> = RefCell::new(ThreadLog::default());
}

/// Installs the callback; idempotent.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `on_log` is a plain function that lives for the whole program and needs no
        // user data; llama.cpp and ggml may call it from any thread.
        unsafe {
            llama_cpp_sys_2::llama_log_set(Some(on_log), std::ptr::null_mut());
            llama_cpp_sys_2::ggml_log_set(Some(on_log), std::ptr::null_mut());
        }
    });
}

/// Takes this thread's recent warning and error lines, most recent last.
pub(crate) fn take_recent() -> Vec<String> {
    LOG.with(|log| log.borrow_mut().recent.drain(..).collect())
}

unsafe extern "C" fn on_log(level: ggml_log_level, text: *const c_char, _user_data: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    LOG.with(|log| {
        let Ok(mut log) = log.try_borrow_mut() else { return };
        if level != GGML_LOG_LEVEL_CONT {
            log.level = level;
        }
        log.partial.push_str(&text);
        while let Some(end) = log.partial.find('\n') {
            let line: String = log.partial.drain(..=end).collect();
            let line = line.trim_end();
            if !line.is_empty() {
                let level = log.level;
                emit(level, line);
                if level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR {
                    if log.recent.len() == KEPT_LINES {
                        log.recent.pop_front();
                    }
                    log.recent.push_back(line.to_string());
                }
            }
        }
    });
}

fn emit(level: ggml_log_level, line: &str) {
    match level {
        GGML_LOG_LEVEL_ERROR => tracing::error!(target: "llama_cpp", "{line}"),
        GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama_cpp", "{line}"),
        GGML_LOG_LEVEL_INFO => tracing::debug!(target: "llama_cpp", "{line}"),
        GGML_LOG_LEVEL_DEBUG => tracing::trace!(target: "llama_cpp", "{line}"),
        _ => tracing::trace!(target: "llama_cpp", "{line}"),
    }
}
