//! Stripe's webhook signature, checked before the body is parsed
//! (`docs/design/payments.md`).
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`; each `v1` is
//! HMAC-SHA256 of `<t>.<raw body>` keyed by the endpoint's signing secret
//! (`whsec_…`, the whole string). Several `v1` appear while Stripe rolls a
//! secret; any one matching is enough.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, either way.
pub const STRIPE_TOLERANCE_SECONDS: i64 = 300;

/// Why a webhook was refused (each answered 400, nothing read further).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or one without `t=` or any `v1=`.
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    /// `t` is more than [`STRIPE_TOLERANCE_SECONDS`] from now.
    #[error("the signature's timestamp is outside the tolerance (replayed or a clock is wrong)")]
    Stale,
    /// No `v1` matches the body.
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks `header` against `body` signed with `secret` at about `now`.
/// The comparison is the MAC's own, in constant time.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            Some(("v1", value)) => {
                // A `v1` that is not hex cannot match; it is not malformed
                // as long as another one may.
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: a timestamp near i64's ends cannot overflow the check.
    if now.timestamp().abs_diff(timestamp) > STRIPE_TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    if signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    fn sign(timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("{timestamp}.{body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    #[test]
    fn a_matching_v1_within_the_tolerance_passes() {
        let body = r#"{"id":"evt_1"}"#;
        let header = format!("t=1700000000,v1={}", sign(1_700_000_000, body));
        assert_eq!(
            verify(SECRET, Some(&header), body.as_bytes(), at(1_700_000_300)),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(&header), body.as_bytes(), at(1_699_999_700)),
            Ok(())
        );
    }

    /// Timestamps far in the past or future are stale, never an overflow
    /// (`t = now - 2^63` was accepted by a release build's wrapping subtraction).
    #[test]
    fn timestamps_at_the_ends_of_the_range_are_stale() {
        let body = "{}";
        let now = at(1_700_000_000);
        for t in [
            i64::MIN,
            i64::MIN + 1,
            now.timestamp().wrapping_sub(i64::MIN),
            i64::MAX,
        ] {
            let header = format!("t={t},v1={}", sign(t, body));
            assert_eq!(
                verify(SECRET, Some(&header), body.as_bytes(), now),
                Err(SignatureError::Stale),
                "t={t}"
            );
        }
    }

    #[test]
    fn any_of_several_v1_may_match_and_v0_is_ignored() {
        let body = "{}";
        let header = format!("t=10,v0={},v1=00ff,v1={}", sign(10, body), sign(10, body));
        assert_eq!(verify(SECRET, Some(&header), body.as_bytes(), at(10)), Ok(()));
        let only_v0 = format!("t=10,v0={}", sign(10, body));
        assert_eq!(
            verify(SECRET, Some(&only_v0), body.as_bytes(), at(10)),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_changed_body_timestamp_or_secret_does_not_match() {
        let body = r#"{"amount":100}"#;
        let header = format!("t=10,v1={}", sign(10, body));
        assert_eq!(
            verify(SECRET, Some(&header), br#"{"amount":900}"#, at(10)),
            Err(SignatureError::Mismatch)
        );
        let moved = format!("t=11,v1={}", sign(10, body));
        assert_eq!(
            verify(SECRET, Some(&moved), body.as_bytes(), at(10)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"whsec_other", Some(&header), body.as_bytes(), at(10)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_or_future_timestamps_are_stale() {
        let body = "{}";
        let header = format!("t=1000,v1={}", sign(1000, body));
        assert_eq!(
            verify(SECRET, Some(&header), body.as_bytes(), at(1301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, Some(&header), body.as_bytes(), at(699)),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        for header in [
            None,
            Some(""),
            Some("v1=00"),
            Some("t=abc,v1=00"),
            Some("t=10"),
            Some("t=10,v1=zz"),
        ] {
            assert_eq!(
                verify(SECRET, header, b"{}", at(10)),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }
}
