//! The Confluent wire format: byte 0 (the magic), the schema id as a 4-byte big-endian
//! integer, then the body. Protobuf bodies start with the indexes of the message within its
//! file (Confluent's "message indexes"): a zigzag varint count, then that many zigzag varint
//! indexes, a lone `0` standing for `[0]`, the file's first message.
//!
//! Source: Confluent's "Wire format" documentation (schema-registry/fundamentals/serdes-develop).

/// The magic byte that starts every Confluent-framed payload.
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// A payload split into its schema id and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema_id: u32,
    pub body: &'a [u8],
}

/// Split a Confluent-framed payload.
///
/// # Errors
/// A reason to show the user when the payload is too short or does not start with the magic
/// byte (it was not written by a registry-aware serializer).
pub fn split(payload: &[u8]) -> Result<Framed<'_>, String> {
    if payload.len() < HEADER_LEN || payload[0] != MAGIC {
        return Err(format!(
            "the payload is not in the Confluent wire format (expected byte 0 and a 4-byte \
             schema id, found {} byte(s) starting {})",
            payload.len(),
            hex_prefix(payload)
        ));
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok(Framed {
        schema_id: id,
        body: &payload[HEADER_LEN..],
    })
}

/// Whether a payload starts like a Confluent frame. Used only where a body can never start
/// with byte 0 (JSON text, a Protobuf message: field numbers start at 1).
pub fn looks_framed(payload: &[u8]) -> bool {
    payload.len() >= HEADER_LEN && payload[0] == MAGIC
}

/// Read the Protobuf message-index list at the start of `body`; returns the indexes and the
/// rest of the body.
///
/// # Errors
/// A reason when the varints are truncated or negative.
pub fn message_indexes(body: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let mut rest = body;
    let count = read_zigzag(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if count < 0 || count as usize > rest.len() {
        return Err(format!("invalid Protobuf message-index count {count}"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let index = read_zigzag(&mut rest)?;
        if index < 0 {
            return Err(format!("invalid Protobuf message index {index}"));
        }
        indexes.push(index as i32);
    }
    Ok((indexes, rest))
}

fn read_zigzag(input: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for (i, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("truncated Protobuf message-index varint".into())
}

/// The first bytes of a payload in hex, for error messages.
pub fn hex_prefix(payload: &[u8]) -> String {
    if payload.is_empty() {
        return "(empty)".into();
    }
    let shown: Vec<String> = payload.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let more = if payload.len() > 8 { " …" } else { "" };
    format!("0x{}{more}", shown.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_split_reads_big_endian_id() {
        let framed = split(&[0, 0, 0, 1, 2, 9, 9]).unwrap();
        assert_eq!(framed.schema_id, 258);
        assert_eq!(framed.body, &[9, 9]);
    }

    #[test]
    fn test_split_rejects_unframed() {
        let error = split(b"{\"a\": 1}").unwrap_err();
        assert!(
            error.contains("not in the Confluent wire format"),
            "{error}"
        );
        assert!(error.contains("0x7b 22 61"), "{error}");
        assert!(split(&[0, 0, 1]).is_err());
    }

    #[test]
    fn test_message_indexes() {
        // A lone 0: the first message.
        assert_eq!(message_indexes(&[0, 42]).unwrap(), (vec![0], &[42u8][..]));
        // Count 2 (zigzag 4), indexes 1 (2) and 0 (0).
        assert_eq!(
            message_indexes(&[4, 2, 0, 7]).unwrap(),
            (vec![1, 0], &[7u8][..])
        );
        assert!(message_indexes(&[0x80]).is_err());
        assert!(message_indexes(&[1]).is_err());
    }
}
