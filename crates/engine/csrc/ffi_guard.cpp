// Keeps C++ exceptions thrown inside llama.cpp from unwinding into Rust, where they abort
// the whole process ("Rust cannot catch foreign exceptions"). On Linux the linker routes
// every call of llama_decode through __wrap_llama_decode (`-Wl,--wrap=llama_decode`, set in
// .cargo/config.toml), which catches what llama.cpp throws and returns an error code instead;
// the exception's message waits in a thread-local slot for the Rust side to report.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>

namespace {
thread_local char last_exception[512];

void remember(const char* what) {
    std::strncpy(last_exception, what, sizeof last_exception - 1);
    last_exception[sizeof last_exception - 1] = '\0';
}
}  // namespace

extern "C" {

// llama.h's llama_batch, field for field (a Rust test checks the layout against the
// bindings of the pinned llama.cpp version).
struct hearth_llama_batch {
    int32_t n_tokens;
    int32_t* token;
    float* embd;
    int32_t* pos;
    int32_t* n_seq_id;
    int32_t** seq_id;
    int8_t* logits;
};

struct llama_context;

// What a guarded call returns when llama.cpp threw.
const int32_t HEARTH_FFI_EXCEPTION = -7001;

size_t hearth_ffi_batch_size(void) { return sizeof(hearth_llama_batch); }

// The message of the last exception caught on this thread, once; NULL when there is none.
const char* hearth_ffi_take_exception(void) {
    static thread_local char taken[sizeof last_exception];
    if (last_exception[0] == '\0') {
        return nullptr;
    }
    std::memcpy(taken, last_exception, sizeof taken);
    last_exception[0] = '\0';
    return taken;
}

#ifdef HEARTH_WRAP_LLAMA_DECODE
// Weak, so that a build whose RUSTFLAGS leave out the --wrap flag still links (unguarded).
// A weak reference does not pull an archive member in by itself; llama_decode's object is
// linked all the same, since it also defines llama_init_from_model, which hearth calls (the
// test in tests/ffi_guard.rs decodes through this wrapper).
__attribute__((weak)) int32_t __real_llama_decode(llama_context* ctx, hearth_llama_batch batch);

int32_t __wrap_llama_decode(llama_context* ctx, hearth_llama_batch batch) {
    try {
        return __real_llama_decode(ctx, batch);
    } catch (const std::exception& e) {
        remember(e.what());
    } catch (...) {
        remember("an exception that is not a std::exception");
    }
    return HEARTH_FFI_EXCEPTION;
}
#endif
}
