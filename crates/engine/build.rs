//! Compiles the guard that keeps llama.cpp's C++ exceptions out of Rust (csrc/ffi_guard.cpp).

fn main() {
    println!("cargo:rerun-if-changed=csrc/ffi_guard.cpp");
    let mut build = cc::Build::new();
    build.cpp(true).file("csrc/ffi_guard.cpp").flag_if_supported("-std=c++17");
    // GNU ld and lld wrap symbols; the flag itself is in .cargo/config.toml, since a
    // library's build script cannot pass link flags to the binaries that use it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        build.define("HEARTH_WRAP_LLAMA_DECODE", None);
    }
    build.compile("hearth_ffi_guard");
}
