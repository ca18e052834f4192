//! A saved prompt cache's file: a header with the key of the model and settings the state
//! was computed with and the tokens it holds, then llama.cpp's sequence state, then a
//! SHA-256 of everything before it. A file cut short, changed on disk or made for other
//! weights or settings is refused here, before llama.cpp sees a byte of it.
//!
//! ```text
//! "HEARTHKV" | version u32 | key [32] | tokens u32 | token i32 × tokens | state u64 | state | sha256 [32]
//! ```
//! Integers are little-endian.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

const MAGIC: &[u8; 8] = b"HEARTHKV";
const VERSION: u32 = 1;
const CHECKSUM: usize = 32;

/// Names the weights, settings and llama.cpp build a state is valid for.
pub(crate) type Key = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it is not a hearth prompt cache")]
    NotACache,
    #[error("it is of format version {0}, this build reads {VERSION}")]
    Version(u32),
    #[error("it was saved for other weights or settings")]
    OtherKey,
    #[error("it holds {0} tokens, more than a context of this model does")]
    TooLong(u64),
    #[error("it is cut short")]
    Truncated,
    #[error("its checksum does not match: it changed after it was written")]
    Checksum,
}

/// What a file says it holds, read without its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub key: Key,
    pub tokens: Vec<i32>,
}

/// Writes a whole file: the header, `state`, and the checksum of both.
pub(crate) fn write(out: &mut impl Write, key: &Key, tokens: &[i32], state: &[u8]) -> io::Result<()> {
    let mut out = Hashing { inner: out, hash: Sha256::new() };
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&(tokens.len() as u32).to_le_bytes())?;
    for token in tokens {
        out.write_all(&token.to_le_bytes())?;
    }
    out.write_all(&(state.len() as u64).to_le_bytes())?;
    out.write_all(state)?;
    let checksum = out.hash.finalize();
    out.inner.write_all(&checksum)
}

/// Reads the header of a file, refusing one with more than `max_tokens` tokens (its
/// state could not fit a context) or another `key`.
pub(crate) fn read_header(input: &mut impl Read, key: &Key, max_tokens: usize) -> Result<Header, FileError> {
    let mut magic = [0u8; 8];
    read_exact(input, &mut magic)?;
    if &magic != MAGIC {
        return Err(FileError::NotACache);
    }
    let version = u32::from_le_bytes(read_array(input)?);
    if version != VERSION {
        return Err(FileError::Version(version));
    }
    let found: Key = read_array(input)?;
    if &found != key {
        return Err(FileError::OtherKey);
    }
    let count = u32::from_le_bytes(read_array(input)?);
    if count as usize > max_tokens {
        return Err(FileError::TooLong(count.into()));
    }
    let mut bytes = vec![0u8; count as usize * 4];
    read_exact(input, &mut bytes)?;
    let tokens = bytes.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    Ok(Header { key: found, tokens })
}

/// Checks a whole file read into `bytes` and returns its header and its state.
pub(crate) fn read<'b>(bytes: &'b [u8], key: &Key, max_tokens: usize) -> Result<(Header, &'b [u8]), FileError> {
    let mut input = bytes;
    let header = read_header(&mut input, key, max_tokens)?;
    let length = u64::from_le_bytes(read_array(&mut input)?);
    let length = usize::try_from(length).map_err(|_| FileError::Truncated)?;
    if input.len() < length.saturating_add(CHECKSUM) {
        return Err(FileError::Truncated);
    }
    let (state, checksum) = input.split_at(length);
    let body = &bytes[..bytes.len() - checksum.len()];
    if checksum.len() != CHECKSUM || Sha256::digest(body).as_slice() != checksum {
        return Err(FileError::Checksum);
    }
    Ok((header, state))
}

fn read_array<const N: usize>(input: &mut impl Read) -> Result<[u8; N], FileError> {
    let mut bytes = [0u8; N];
    read_exact(input, &mut bytes)?;
    Ok(bytes)
}

fn read_exact(input: &mut impl Read, into: &mut [u8]) -> Result<(), FileError> {
    input.read_exact(into).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FileError::Truncated,
        _ => FileError::Io(e),
    })
}

/// A writer that hashes what goes through it.
struct Hashing<'w, W> {
    inner: &'w mut W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hash.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [7; 32];

    fn saved() -> Vec<u8> {
        let mut bytes = Vec::new();
        write(&mut bytes, &KEY, &[1, 2, 300_000], b"kv state bytes").unwrap();
        bytes
    }

    #[test]
    fn a_file_reads_back_as_written() {
        let bytes = saved();
        let (header, state) = read(&bytes, &KEY, 3).unwrap();
        assert_eq!(header, Header { key: KEY, tokens: vec![1, 2, 300_000] });
        assert_eq!(state, b"kv state bytes");
        assert_eq!(read_header(&mut bytes.as_slice(), &KEY, 3).unwrap(), header);
    }

    #[test]
    fn every_cut_is_refused() {
        let bytes = saved();
        for end in 0..bytes.len() {
            assert!(read(&bytes[..end], &KEY, 3).is_err(), "cut at {end} of {}", bytes.len());
        }
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let bytes = saved();
        let header_end = 8 + 4 + 32 + 4 + 12;
        for at in header_end..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert!(read(&changed, &KEY, 3).is_err(), "byte {at} changed");
        }
    }

    #[test]
    fn another_key_version_or_length_is_refused() {
        let bytes = saved();
        assert!(matches!(read(&bytes, &[8; 32], 3), Err(FileError::OtherKey)));
        assert!(matches!(read(&bytes, &KEY, 2), Err(FileError::TooLong(3))));
        let mut other_version = bytes.clone();
        other_version[8] = 2;
        assert!(matches!(read(&other_version, &KEY, 3), Err(FileError::Version(2))));
        assert!(matches!(read(b"GGUF and more bytes", &KEY, 3), Err(FileError::NotACache)));
    }
}
