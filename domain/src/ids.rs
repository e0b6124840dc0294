//! Identifiers and keys parsed at the edge into types that cannot be invalid.

use std::fmt;

use crate::DomainError;

/// Longest accepted workspace id, in characters.
pub const WORKSPACE_ID_LENGTH_MAX: usize = 64;
/// Longest accepted idempotency key or payment reference, in characters.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 200;
/// Longest accepted free-text reference on a spend, in characters.
pub const REFERENCE_LENGTH_MAX: usize = 200;

/// A workspace id: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    /// Parses a workspace id given by a client.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if raw.is_empty() || raw.chars().count() > WORKSPACE_ID_LENGTH_MAX || !valid_chars {
            return Err(DomainError::invalid(
                field,
                format!("must be 1 to {WORKSPACE_ID_LENGTH_MAX} characters of A-Z, a-z, 0-9, _ and -"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An idempotency key (or a payment reference used as one): 1 to 200
/// characters, not only whitespace. It is compared exactly, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key given by a client in `field`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let length = raw.chars().count();
        if length == 0 || length > IDEMPOTENCY_KEY_LENGTH_MAX || raw.trim().is_empty() {
            return Err(DomainError::invalid(
                field,
                format!("must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters and not only whitespace"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that would let a text rewrite how a log line, an export or
/// an admin screen reads: C0/C1 controls and the Unicode bidi overrides,
/// embeddings, isolates and marks. Texts people read (a token's `sub`,
/// agent ids, names, descriptions, reasons) refuse them.
pub fn is_control_or_bidi(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `text` holds a character of [`is_control_or_bidi`].
pub fn has_control_or_bidi(text: &str) -> bool {
    text.chars().any(is_control_or_bidi)
}

/// Parses an optional free-text reference (a ticket id, a thread id…).
pub fn parse_reference(field: &'static str, raw: Option<&str>) -> Result<Option<String>, DomainError> {
    match raw {
        None => Ok(None),
        Some(text) if text.chars().count() > REFERENCE_LENGTH_MAX => Err(DomainError::invalid(
            field,
            format!("must be at most {REFERENCE_LENGTH_MAX} characters"),
        )),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_to_1_to_200_characters() {
        assert!(IdempotencyKey::parse("k", "").is_err());
        assert!(IdempotencyKey::parse("k", "   ").is_err());
        assert!(IdempotencyKey::parse("k", "a").is_ok());
        assert!(IdempotencyKey::parse("k", &"é".repeat(200)).is_ok());
        assert!(IdempotencyKey::parse("k", &"a".repeat(201)).is_err());
    }

    #[test]
    fn workspace_ids_accept_only_a_safe_alphabet() {
        assert!(WorkspaceId::parse("w", "ws_acme-1").is_ok());
        assert!(WorkspaceId::parse("w", "").is_err());
        assert!(WorkspaceId::parse("w", "a b").is_err());
        assert!(WorkspaceId::parse("w", "x'; drop").is_err());
        assert!(WorkspaceId::parse("w", &"a".repeat(65)).is_err());
    }

    #[test]
    fn bidi_and_control_characters_are_found() {
        for bad in [
            "agent\u{202E}gnp.exe",
            "a\u{2066}b",
            "tab\there",
            "\u{200F}x",
            "nul\0",
        ] {
            assert!(has_control_or_bidi(bad), "{bad:?}");
        }
        assert!(!has_control_or_bidi("agent-7 é 漢字"));
    }

    #[test]
    fn references_are_bounded() {
        assert_eq!(parse_reference("r", None), Ok(None));
        assert!(parse_reference("r", Some(&"a".repeat(201))).is_err());
    }
}
