//! `sha256:<hex>` digests, the identity of every blob.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::Read;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>` (or the file-name form `sha256-<hex>`).
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").or_else(|| text.strip_prefix("sha256-"))?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(hex.to_string()))
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(hearth_core::hex::encode(&Sha256::digest(bytes)))
    }

    /// Hashes everything `reader` yields; returns the digest and the byte count.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<(Self, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok((Self(hearth_core::hex::encode(&hasher.finalize())), size));
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    }

    /// Hashes what `writer` is given while passing it on: one pass over the bytes.
    pub(crate) fn hashing<W: std::io::Write>(writer: W) -> HashingWriter<W> {
        HashingWriter { inner: writer, hasher: Sha256::new(), size: 0 }
    }

    /// The blob's file name: `sha256-<hex>` (no ':' so it is a valid name everywhere).
    pub fn file_name(&self) -> String {
        format!("sha256-{}", self.0)
    }

    /// The first 12 hex digits, as `list` shows a model's id.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> HashingWriter<W> {
    /// The digest and byte count of everything written, and the writer.
    pub(crate) fn finish(self) -> (Digest, u64, W) {
        (Digest(hearth_core::hex::encode(&self.hasher.finalize())), self.size, self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a sha256 digest: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_known_inputs() {
        let empty = Digest::of_bytes(b"");
        assert_eq!(empty.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::of_reader(&b""[..]).unwrap(), (empty.clone(), 0));
        assert_eq!(empty.file_name(), "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::parse(&empty.file_name()), Some(empty.clone()));
        assert_eq!(empty.short(), "e3b0c44298fc");
    }

    #[test]
    fn hashing_while_writing_equals_hashing_after() {
        use std::io::Write;
        let mut writer = Digest::hashing(Vec::new());
        writer.write_all(b"GGUF ").unwrap();
        writer.write_all(b"weights").unwrap();
        let (digest, size, written) = writer.finish();
        assert_eq!((digest, size), (Digest::of_bytes(b"GGUF weights"), 12));
        assert_eq!(written, b"GGUF weights");
    }

    #[test]
    fn malformed_digests_are_rejected() {
        for text in [
            "",
            "sha256:abc",
            "md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        ] {
            assert_eq!(Digest::parse(text), None, "{text}");
        }
    }
}
