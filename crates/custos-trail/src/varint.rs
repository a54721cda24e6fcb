//! Unsigned LEB128 varints, the integer encoding inside segment payloads.
//!
//! Why LEB128: record headers must stay tiny (the recording may cost at most 2 % on top of the
//! payload), and most values in a record header (time deltas, channel ids, lengths) are small.
//! Why *canonical* (shortest) encodings only: every value then has exactly one byte form, so a
//! third-party verifier can re-encode and compare, and a flipped bit can never produce an
//! alternative spelling of the same record.

/// Longest encoding of a `u64`: ceil(64 / 7) bytes.
#[cfg(test)]
pub const MAX_LEN: usize = 10;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than 64 bits, or a non-shortest encoding (a final byte of zero after the first).
    Invalid,
}

/// Appends the LEB128 encoding of `value` to `out`.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Number of bytes [`put`] writes for `value`.
pub fn len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes one varint from `input` at `*pos`, advancing `*pos` past it.
pub fn get(input: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    let mut shift: u32 = 0;
    let mut i = *pos;
    loop {
        let Some(&byte) = input.get(i) else {
            return Err(VarintError::Truncated);
        };
        i += 1;
        let low = u64::from(byte & 0x7f);
        if shift == 63 && low > 1 {
            return Err(VarintError::Invalid);
        }
        value |= low << shift;
        if byte & 0x80 == 0 {
            // Shortest form: a terminating zero byte is only allowed as the whole encoding of 0.
            if byte == 0 && shift > 0 {
                return Err(VarintError::Invalid);
            }
            *pos = i;
            return Ok(value);
        }
        shift += 7;
        if shift > 63 {
            return Err(VarintError::Invalid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lengths() {
        let values = [
            0u64,
            1,
            127,
            128,
            255,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        for v in values {
            let mut buf = Vec::new();
            put(&mut buf, v);
            assert_eq!(buf.len(), len(v), "len({v})");
            let mut pos = 0;
            assert_eq!(get(&buf, &mut pos), Ok(v));
            assert_eq!(pos, buf.len());
        }
        let mut buf = Vec::new();
        put(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        assert_eq!(len(u64::MAX), MAX_LEN);
    }

    #[test]
    fn rejects_bad_encodings() {
        let mut pos = 0;
        assert_eq!(get(&[0x80], &mut pos), Err(VarintError::Truncated));
        assert_eq!(get(&[], &mut pos), Err(VarintError::Truncated));
        // Non-shortest encoding of 0 and of 1.
        assert_eq!(get(&[0x80, 0x00], &mut pos), Err(VarintError::Invalid));
        assert_eq!(get(&[0x81, 0x00], &mut pos), Err(VarintError::Invalid));
        // 65 bits.
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(get(&too_big, &mut pos), Err(VarintError::Invalid));
        // 11 bytes.
        let mut too_long = vec![0x80; 10];
        too_long.push(0x01);
        assert_eq!(get(&too_long, &mut pos), Err(VarintError::Invalid));
        assert_eq!(pos, 0, "pos untouched on error");
    }
}
