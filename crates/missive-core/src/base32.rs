//! Lowercase base32 (RFC 4648's alphabet, no padding) for values that travel in places where case
//! may not survive or matter: API keys, and return-path local parts that relays may fold.

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Appends `bytes`, encoded, to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
}

/// Decodes exactly `N` bytes; refuses foreign characters (upper case included: callers fold
/// case first where it may have been changed) and non-zero trailing bits, so every value has
/// exactly one spelling and a one-character change is always noticed.
pub(crate) fn decode<const N: usize>(encoded: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut written = 0usize;
    for &c in encoded {
        let value = match c {
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(written)? = (buffer >> bits) as u8;
            written += 1;
        }
        buffer &= (1 << bits) - 1;
    }
    (written == N && buffer == 0).then_some(out)
}
