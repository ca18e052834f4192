//! Quantization: a GGUF model rewritten with its weights in another type by llama.cpp's own
//! quantizer (`llama_model_quantize`, what llama.cpp's llama-quantize runs), written beside
//! the destination first and renamed into place, so an interrupted run leaves no half file.

use crate::error::EngineError;
use crate::gguf::file_type_by_name;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The types `quantize` makes: those that need no importance matrix.
pub const QUANT_TYPES: [&str; 18] = [
    "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_L",
    "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS",
];

/// What a quantization did.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub source_type: String,
    pub target_type: String,
    pub source_bytes: u64,
    pub output_bytes: u64,
    pub seconds: f64,
    /// The source was already quantized: the result cannot be better than the source.
    pub requantized: bool,
}

/// Writes `source` to `output` with its weights as `kind` (one of [`QUANT_TYPES`], any case),
/// on `threads` threads (default: all cores). llama.cpp keeps some tensors in higher
/// precision where the type's recipe says so (the `_M`/`_L` mixes).
pub fn quantize(source: &Path, output: &Path, kind: &str, threads: Option<u32>) -> Result<Quantized, EngineError> {
    let target_type = kind.to_ascii_uppercase();
    let file_type =
        QUANT_TYPES.contains(&target_type.as_str()).then(|| file_type_by_name(&target_type)).flatten().ok_or_else(
            || EngineError::InvalidSetting(format!("unknown quantization {kind:?}; one of {}", QUANT_TYPES.join(", "))),
        )?;
    let header = crate::load::read_header(source)?;
    let source_type = header.quantization();
    let requantized = !matches!(source_type.as_str(), "F32" | "F16" | "BF16");
    if output.exists() && output.canonicalize().ok() == source.canonicalize().ok() {
        return Err(EngineError::InvalidSetting("the output would overwrite the source".into()));
    }
    let partial = partial_path(output);
    let c_path = |path: &Path| {
        CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| EngineError::InvalidSetting(format!("{}: a path with a NUL byte", path.display())))
    };
    let (c_source, c_partial) = (c_path(source)?, c_path(&partial)?);
    crate::load::backend();
    let start = Instant::now();
    // SAFETY: the parameters come from llama.cpp's defaults with plain fields changed; the
    // paths are NUL-terminated strings that outlive the call.
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.ftype = file_type as llama_cpp_sys_2::llama_ftype;
        params.nthread = threads.map_or(0, |t| i32::try_from(t).unwrap_or(i32::MAX));
        params.allow_requantize = requantized;
        llama_cpp_sys_2::llama_model_quantize(c_source.as_ptr(), c_partial.as_ptr(), &params)
    };
    if status != 0 {
        let _ = std::fs::remove_file(&partial);
        return Err(EngineError::Load {
            path: source.to_path_buf(),
            detail: format!(
                "llama.cpp could not quantize it to {target_type} (status {status}); see HEARTH_LOG=llama_cpp=error"
            ),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { path, source }
    };
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io(&partial))?;
    std::fs::rename(&partial, output).map_err(io(output))?;
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).map_err(io(path));
    Ok(Quantized {
        source_type,
        target_type,
        source_bytes: size(source)?,
        output_bytes: size(output)?,
        seconds: start.elapsed().as_secs_f64(),
        requantized,
    })
}

/// Where the file is written before it is complete: beside `output`, so the rename is atomic.
fn partial_path(output: &Path) -> PathBuf {
    let name = output.file_name().map_or("model.gguf".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.partial"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_type_has_a_llama_cpp_number_and_unknown_ones_are_refused() {
        for name in QUANT_TYPES {
            assert!(file_type_by_name(name).is_some(), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let err = quantize(&dir.path().join("a.gguf"), &dir.path().join("b.gguf"), "q9_9", None).unwrap_err();
        assert!(err.to_string().contains("unknown quantization \"q9_9\""), "{err}");
        let err = quantize(&dir.path().join("a.gguf"), &dir.path().join("b.gguf"), "iq2_xxs", None).unwrap_err();
        assert!(err.to_string().contains("one of F16"), "types needing an importance matrix are not offered: {err}");
        assert_eq!(partial_path(Path::new("/m/x.gguf")), Path::new("/m/.x.gguf.partial"));
    }
}
