//! Bytes as lowercase hexadecimal: digests, salts and file names.

/// Two lowercase hex digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_lowercase_digits_per_byte() {
        assert_eq!(super::encode(&[0, 0xab, 0x0f, 0xff]), "00ab0fff");
        assert_eq!(super::encode(&[]), "");
    }
}
