//! Opening a model file, one way for everything that loads one (the engine, the quality
//! measures of `hearth eval`, the tokenizer): llama.cpp's backend initialised once, the
//! file checked before llama.cpp sees it (missing, a directory, not a GGUF, truncated),
//! and a failed load told by what llama.cpp logged, so each fails with the same error.

use crate::error::EngineError;
use crate::gguf::GgufHeader;
use crate::llama_log;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// llama.cpp's process-wide backend, initialised once with our log routing in place.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_log::install();
        // Fails only if initialised twice, which this OnceLock rules out.
        LlamaBackend::init().expect("llama.cpp backend initialises once")
    })
}

/// The GGUF header of the file at `path`, or why there is no model there.
pub(crate) fn read_header(path: &Path) -> Result<GgufHeader, EngineError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::ModelNotFound(path.to_path_buf()),
        _ => EngineError::Io { path: path.to_path_buf(), source: e },
    })?;
    if meta.is_dir() {
        return Err(EngineError::NotAFile { path: path.to_path_buf() });
    }
    GgufHeader::read(path).map_err(|source| EngineError::InvalidModel { path: path.to_path_buf(), source })
}

/// A model file whose header was read, so it can be loaded.
pub(crate) struct ModelFile {
    path: PathBuf,
    header: GgufHeader,
}

impl ModelFile {
    /// Checks the file at `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        Ok(Self { path: path.to_path_buf(), header: read_header(path)? })
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Loads the model (memory-mapped) with `params`. A failure says the architecture is
    /// not supported when that is why, and otherwise gives llama.cpp's own reason.
    pub fn load(&self, params: &LlamaModelParams) -> Result<LlamaModel, EngineError> {
        let backend = backend();
        llama_log::take_recent();
        LlamaModel::load_from_file(backend, &self.path, params).map_err(|e| self.load_error(e))
    }

    fn load_error(&self, e: impl std::fmt::Display) -> EngineError {
        let path = self.path.clone();
        let recent = llama_log::take_recent();
        if recent.iter().any(|line| line.contains("unknown model architecture")) {
            return EngineError::UnsupportedArchitecture { path, architecture: self.header.model_info().architecture };
        }
        let detail = recent
            .iter()
            .rev()
            .find_map(|line| line.split_once("error loading model: ").map(|(_, why)| why.to_string()))
            .or_else(|| recent.last().cloned())
            .unwrap_or_else(|| e.to_string());
        EngineError::Load { path, detail }
    }
}

#[cfg(test)]
mod tests {
    use crate::gguf::writer::{gguf_bytes, Value};
    use crate::quality::{divergence, perplexity, QualitySettings};
    use crate::{Engine, EngineError, EngineSettings, GgufError, Tokenizer};
    use std::path::Path;

    /// The error of each way to load a model: the engine's, perplexity's, the KL
    /// divergence's (whose reference loads first) and the tokenizer's.
    fn errors(path: &Path) -> Vec<(&'static str, EngineError)> {
        let settings = QualitySettings { threads: Some(1), ..QualitySettings::default() };
        let text = "Some text to score.";
        vec![
            ("Engine::load", Engine::load(path, &EngineSettings::default()).err().expect("no engine")),
            ("perplexity", perplexity(path, text, &settings).unwrap_err()),
            ("divergence", divergence(path, path, text, &settings).unwrap_err()),
            ("Tokenizer::load", Tokenizer::load(path).err().expect("no tokenizer")),
        ]
    }

    /// Every way to load `path` fails as `expected` says, with the engine's message.
    fn assert_same_error(path: &Path, expected: impl Fn(&EngineError) -> bool) {
        let errors = errors(path);
        let engine = errors[0].1.to_string();
        for (how, error) in &errors {
            assert!(expected(error), "{how}: {error:?}");
            assert_eq!(error.to_string(), engine, "{how} and Engine::load disagree");
        }
    }

    #[test]
    fn every_way_to_load_a_model_gives_the_engines_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_same_error(&dir.path().join("missing.gguf"), |e| matches!(e, EngineError::ModelNotFound(_)));
        assert_same_error(dir.path(), |e| matches!(e, EngineError::NotAFile { .. }));

        let text = dir.path().join("notes.gguf");
        std::fs::write(&text, "just some text, not a model").unwrap();
        assert_same_error(&text, |e| matches!(e, EngineError::InvalidModel { source: GgufError::NotGguf, .. }));

        let truncated = dir.path().join("truncated.gguf");
        let bytes = gguf_bytes(&[("general.architecture", Value::Str("llama"))], &[]);
        std::fs::write(&truncated, &bytes[..bytes.len() - 3]).unwrap();
        assert_same_error(&truncated, |e| {
            matches!(e, EngineError::InvalidModel { source: GgufError::Truncated { .. }, .. })
        });

        // A header that reads, of an architecture llama.cpp refuses: the error comes from
        // what llama.cpp logged while loading.
        let alien = dir.path().join("alien.gguf");
        std::fs::write(&alien, gguf_bytes(&[("general.architecture", Value::Str("notreal"))], &[("w", &[32])]))
            .unwrap();
        assert_same_error(
            &alien,
            |e| matches!(e, EngineError::UnsupportedArchitecture { architecture, .. } if architecture == "notreal"),
        );
    }
}
