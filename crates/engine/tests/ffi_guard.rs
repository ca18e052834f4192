//! The exception guard on llama.cpp's decode, on its own process (it initialises llama.cpp's
//! backend itself): a setting that makes llama.cpp throw, which hearth's own bounds never
//! let through, gives an error for that decode instead of aborting the process.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::DecodeError;
use std::num::NonZeroU32;

/// What the guard returns for a decode that threw (csrc/ffi_guard.cpp).
const THREW: i32 = -7001;

#[test]
fn an_exception_inside_decode_is_an_error_not_an_abort() {
    let backend = LlamaBackend::init().unwrap();
    let path = hearth_engine::test_models::smollm2();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    // A million threads: llama.cpp sizes its work buffer by thread count and throws
    // std::bad_alloc allocating it.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(64))
        .with_n_threads(1_000_000)
        .with_n_threads_batch(1_000_000);
    let mut ctx = model.new_context(&backend, params).unwrap();
    let mut batch = LlamaBatch::new(8, 1);
    batch.add(model.vocab().bos(), 0, &[0], true).unwrap();
    assert_eq!(ctx.decode(&mut batch), Err(DecodeError::Unknown(THREW)));
}
