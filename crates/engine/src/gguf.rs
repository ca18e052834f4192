//! Reads a GGUF file's header (metadata and tensor table) without touching its weights, so
//! we can describe a model, and reject a file that is not GGUF or is cut short, with a clear
//! message before llama.cpp ever sees it.

use hearth_core::ModelInfo;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (it does not start with the GGUF magic bytes)")]
    NotGguf,
    #[error("GGUF version {0} is not supported (versions 2 and 3 are)")]
    UnsupportedVersion(u32),
    #[error(
        "the file is truncated: it is {actual} bytes but its header describes {expected} bytes; download it again"
    )]
    Truncated { expected: u64, actual: u64 },
    #[error("the GGUF header is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A metadata value. Arrays keep their length only: the big ones are tokenizer tables
/// that nothing outside llama.cpp needs.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { len: u64 },
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::Uint(v) => Some(v),
            MetaValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset of the tensor's data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of tensor data, when the element type is one we know the layout of.
    pub fn byte_size(&self) -> Option<u64> {
        let (block, bytes) = ggml_type_layout(self.ggml_type)?;
        Some(self.elements() / block * bytes)
    }
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    /// Where tensor data starts in the file.
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufHeader {
    /// Reads and checks the header of the file at `path`: magic, version, metadata, tensor
    /// table, and that the file is long enough to hold every tensor it declares.
    pub fn read(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path)?;
        let file_size = file.metadata()?.len();
        Self::read_from(file, file_size)
    }

    /// The same from any seekable source of a file of `file_size` bytes (a file being
    /// downloaded, a remote file read by ranges): only the header's bytes are read; the
    /// tokenizer's fixed-width tables are skipped by seeking.
    pub fn read_from(source: impl Read + Seek, file_size: u64) -> Result<Self, GgufError> {
        let mut reader = Reader { inner: BufReader::with_capacity(1 << 16, source), file_size };
        let header = reader.header()?;
        header.check_complete()?;
        Ok(header)
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(MetaValue::as_str)
    }

    /// `<arch>.<key>`, e.g. `llama.context_length`.
    pub fn arch_value(&self, key: &str) -> Option<&MetaValue> {
        self.get(&format!("{}.{key}", self.architecture()?))
    }

    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).sum()
    }

    /// The file's quantization: `general.file_type` when present, else the most common
    /// tensor type by bytes.
    pub fn quantization(&self) -> String {
        if let Some(name) = self.get("general.file_type").and_then(MetaValue::as_u64).and_then(file_type_name) {
            return name.to_string();
        }
        let mut bytes_by_type: BTreeMap<u32, u64> = BTreeMap::new();
        for t in &self.tensors {
            *bytes_by_type.entry(t.ggml_type).or_default() += t.byte_size().unwrap_or(0);
        }
        bytes_by_type
            .into_iter()
            .max_by_key(|&(_, bytes)| bytes)
            .and_then(|(ty, _)| ggml_type_name(ty))
            .unwrap_or("unknown")
            .to_string()
    }

    pub fn model_info(&self) -> ModelInfo {
        ModelInfo {
            architecture: self.architecture().unwrap_or("unknown").to_string(),
            name: self.get("general.name").and_then(MetaValue::as_str).map(str::to_string),
            parameter_count: self.parameter_count(),
            quantization: self.quantization(),
            context_length: self.arch_value("context_length").and_then(MetaValue::as_u64),
            vocab_size: match self.get("tokenizer.ggml.tokens") {
                Some(MetaValue::Array { len }) => Some(*len),
                _ => None,
            },
            chat_template: self.get("tokenizer.chat_template").and_then(MetaValue::as_str).map(str::to_string),
            file_size: self.file_size,
        }
    }

    fn check_complete(&self) -> Result<(), GgufError> {
        let mut expected = self.data_offset;
        for tensor in &self.tensors {
            // A type we do not know the layout of: leave the bounds check to llama.cpp.
            let Some(size) = tensor.byte_size() else { return Ok(()) };
            expected = expected.max(self.data_offset + tensor.offset + size);
        }
        if expected > self.file_size {
            return Err(GgufError::Truncated { expected, actual: self.file_size });
        }
        Ok(())
    }
}

struct Reader<R> {
    inner: BufReader<R>,
    file_size: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn header(&mut self) -> Result<GgufHeader, GgufError> {
        let mut magic = [0u8; 4];
        self.inner.read_exact(&mut magic).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => GgufError::NotGguf,
            _ => e.into(),
        })?;
        if &magic != MAGIC {
            return Err(GgufError::NotGguf);
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;
        // Every entry takes at least 8 bytes; a count beyond that is a corrupt header, and
        // must not become a huge allocation.
        for (what, count) in [("tensor", tensor_count), ("metadata", kv_count)] {
            if count > self.file_size / 8 {
                return Err(GgufError::Corrupt(format!("{count} {what} entries in a {}-byte file", self.file_size)));
            }
        }

        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = self.string()?;
            let value_type = self.u32()?;
            let value = self.value(value_type)?;
            metadata.insert(key, value);
        }

        let mut tensors = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = self.string()?;
            let n_dims = self.u32()?;
            if n_dims > 8 {
                return Err(GgufError::Corrupt(format!("tensor {name} has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| self.u64()).collect::<Result<Vec<_>, _>>()?;
            let ggml_type = self.u32()?;
            let offset = self.u64()?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }

        let alignment = metadata
            .get("general.alignment")
            .and_then(MetaValue::as_u64)
            .filter(|&a| a > 0)
            .unwrap_or(DEFAULT_ALIGNMENT);
        let header_end = self.inner.stream_position()?;
        let data_offset = header_end.div_ceil(alignment) * alignment;
        Ok(GgufHeader { version, metadata, tensors, data_offset, file_size: self.file_size })
    }

    fn value(&mut self, value_type: u32) -> Result<MetaValue, GgufError> {
        Ok(match value_type {
            0 => MetaValue::Uint(self.bytes::<1>()?[0].into()),
            1 => MetaValue::Int(i8::from_le_bytes(self.bytes()?).into()),
            2 => MetaValue::Uint(u16::from_le_bytes(self.bytes()?).into()),
            3 => MetaValue::Int(i16::from_le_bytes(self.bytes()?).into()),
            4 => MetaValue::Uint(self.u32()?.into()),
            5 => MetaValue::Int(i32::from_le_bytes(self.bytes()?).into()),
            6 => MetaValue::Float(f32::from_le_bytes(self.bytes()?).into()),
            7 => MetaValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => MetaValue::String(self.string()?),
            9 => {
                let item_type = self.u32()?;
                let len = self.u64()?;
                self.skip_array(item_type, len)?;
                MetaValue::Array { len }
            }
            10 => MetaValue::Uint(self.u64()?),
            11 => MetaValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(GgufError::Corrupt(format!("unknown metadata value type {other}"))),
        })
    }

    fn skip_array(&mut self, item_type: u32, len: u64) -> Result<(), GgufError> {
        let fixed = match item_type {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match fixed {
            Some(width) => {
                let bytes = len
                    .checked_mul(width)
                    .filter(|&b| b <= self.file_size)
                    .ok_or_else(|| GgufError::Corrupt(format!("array of {len} items does not fit the file")))?;
                self.skip(bytes)
            }
            None if item_type == 8 => {
                for _ in 0..len {
                    let n = self.u64()?;
                    self.skip(n)?;
                }
                Ok(())
            }
            // Arrays of arrays are allowed by the format; walk them item by item.
            None => {
                for _ in 0..len {
                    self.value(item_type)?;
                }
                Ok(())
            }
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let pos = self.inner.stream_position()?;
        if pos.saturating_add(n) > self.file_size {
            return Err(GgufError::Truncated { expected: pos.saturating_add(n), actual: self.file_size });
        }
        self.inner.seek_relative(n as i64)?;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| self.eof_is_truncation(e))?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > self.file_size {
            return Err(GgufError::Corrupt(format!("a {len}-byte string in a {}-byte file", self.file_size)));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(|e| self.eof_is_truncation(e))?;
        String::from_utf8(buf).map_err(|_| GgufError::Corrupt("a string is not valid UTF-8".into()))
    }

    fn eof_is_truncation(&mut self, e: io::Error) -> GgufError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            GgufError::Truncated { expected: self.file_size + 1, actual: self.file_size }
        } else {
            e.into()
        }
    }
}

/// (elements per block, bytes per block) of a ggml tensor type, from ggml's type traits.
fn ggml_type_layout(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

fn ggml_type_name(ggml_type: u32) -> Option<&'static str> {
    Some(match ggml_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        30 => "BF16",
        _ => return None,
    })
}

/// The `general.file_type` number (llama.cpp's `llama_ftype`) of a name such as `Q4_K_M`.
pub fn file_type_by_name(name: &str) -> Option<u32> {
    (0..64).find(|&n| file_type_name(u64::from(n)).is_some_and(|known| known.eq_ignore_ascii_case(name)))
}

/// Name of a `general.file_type` (llama.cpp's `llama_ftype`).
fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// Writes small GGUF files (any metadata, F32 tensors of zeros) for tests here and in other crates.
#[doc(hidden)]
pub mod writer {
    use std::io::Write;

    pub enum Value<'a> {
        U32(u32),
        Str(&'a str),
        StrArray(&'a [&'a str]),
    }

    pub fn gguf_bytes(metadata: &[(&str, Value)], tensors: &[(&str, &[u64])]) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            string(&mut out, key);
            match value {
                Value::U32(v) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Value::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Value::StrArray(items) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(8u32.to_le_bytes());
                    out.extend((items.len() as u64).to_le_bytes());
                    for item in *items {
                        string(&mut out, item);
                    }
                }
            }
        }
        let mut offset = 0u64;
        for (name, dims) in tensors {
            string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in *dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(0u32.to_le_bytes()); // F32
            out.extend(offset.to_le_bytes());
            offset += dims.iter().product::<u64>() * 4;
            offset = offset.div_ceil(32) * 32;
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.write_all(&vec![0u8; offset as usize]).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::writer::{gguf_bytes, Value};
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    fn sample() -> Vec<u8> {
        gguf_bytes(
            &[
                ("general.architecture", Value::Str("llama")),
                ("general.name", Value::Str("tiny")),
                ("general.file_type", Value::U32(0)),
                ("llama.context_length", Value::U32(2048)),
                ("tokenizer.ggml.tokens", Value::StrArray(&["a", "b", "c"])),
                ("tokenizer.chat_template", Value::Str("{{ messages }}")),
            ],
            &[("w1", &[4, 8]), ("w2", &[16])],
        )
    }

    #[test]
    fn reads_metadata_and_tensor_table() {
        let f = write(&sample());
        let header = GgufHeader::read(f.path()).unwrap();
        assert_eq!(header.version, 3);
        assert_eq!(header.get("tokenizer.ggml.tokens"), Some(&MetaValue::Array { len: 3 }));
        let info = header.model_info();
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.name.as_deref(), Some("tiny"));
        assert_eq!(info.parameter_count, 48);
        assert_eq!(info.quantization, "F32");
        assert_eq!(info.context_length, Some(2048));
        assert_eq!(info.vocab_size, Some(3));
        assert_eq!(info.chat_template.as_deref(), Some("{{ messages }}"));
    }

    #[test]
    fn rejects_a_file_that_is_not_gguf() {
        for bytes in [&b"GGML not really"[..], b"", b"GG"] {
            let f = write(bytes);
            assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::NotGguf)), "{bytes:?}");
        }
    }

    #[test]
    fn rejects_unsupported_version() {
        let mut bytes = sample();
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        let f = write(&bytes);
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::UnsupportedVersion(1))));
    }

    #[test]
    fn truncation_is_caught_in_the_header_and_in_the_tensor_data() {
        let bytes = sample();
        // Cut inside the metadata, and inside the tensor data.
        for cut in [64, bytes.len() - 8] {
            let f = write(&bytes[..cut]);
            match GgufHeader::read(f.path()) {
                Err(GgufError::Truncated { actual, .. }) => assert_eq!(actual, cut as u64),
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn absurd_counts_are_corruption_not_allocation() {
        let mut bytes = sample();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let f = write(&bytes);
        assert!(matches!(GgufHeader::read(f.path()), Err(GgufError::Corrupt(_))));
    }

    #[test]
    fn quantization_falls_back_to_the_dominant_tensor_type() {
        let bytes = gguf_bytes(&[("general.architecture", Value::Str("llama"))], &[("w", &[32])]);
        let f = write(&bytes);
        assert_eq!(GgufHeader::read(f.path()).unwrap().quantization(), "F32");
    }
}
