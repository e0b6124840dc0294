//! Opaque cursors of the transactions connection. A cursor is the base64url
//! of `seq:<ledger sequence>`; anything else is BAD_USER_INPUT.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;

/// The cursor of the row at `sequence`.
pub fn encode_cursor(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{sequence}"))
}

/// The sequence a cursor points at.
pub fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    let malformed = || AppError::invalid("after", "is not a cursor returned by this connection");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    text.strip_prefix("seq:")
        .and_then(|digits| digits.parse::<i64>().ok())
        .filter(|sequence| *sequence > 0)
        .ok_or_else(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        for garbage in ["", "!!!", "c2VxOg", "c2VxOi0x", "aGVsbG8"] {
            assert!(decode_cursor(garbage).is_err(), "{garbage}");
        }
    }
}
