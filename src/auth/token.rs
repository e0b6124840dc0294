//! JWT verification. The algorithm is pinned by the configured key: HS256
//! for `JWT_SECRET`, RS256 or ES256 for a public key file (by the key's
//! type). `exp` is required and at most `JWT_MAX_LIFETIME_SECONDS` away;
//! `nbf` is checked when present; `iss` and `aud` are checked when
//! configured; the default leeway of 60 seconds absorbs clock skew. A
//! `sub` is recorded on ledger rows and exported, so control and bidi
//! characters are refused.

use std::collections::HashMap;
use std::fmt;

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{JwtConfig, JwtKeySource};
use crate::error::AppError;
use domain::catalogue::Role;
use domain::ids::WorkspaceId;

/// The verified identity behind a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`; recorded as the actor of every ledger row.
    pub subject: String,
    /// The token's workspace; `None` only for operators.
    pub workspace_id: Option<WorkspaceId>,
    /// The token's role.
    pub role: Role,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("subject", &self.subject)
            .field("workspace_id", &self.workspace_id)
            .field("role", &self.role)
            .finish()
    }
}

/// The claims this service reads (and mints, for development tokens).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: who acts.
    pub sub: String,
    /// The workspace the token is for (absent for operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// `agent`, `service`, `admin` or `operator`.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issuer, checked when `JWT_ISSUER` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, checked when `JWT_AUDIENCE` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Verifies bearer tokens against the one configured key.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Keys,
    /// Longest time from now to a token's `exp`.
    max_lifetime_seconds: i64,
}

/// One key with its pinned algorithm's validation rules.
#[derive(Clone)]
struct Key {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Clone)]
enum Keys {
    /// `JWT_SECRET` or `JWT_PUBLIC_KEY_FILE`: one key; a `kid` is ignored.
    One(Box<Key>),
    /// `JWT_KEYS_FILE`: keys selected by the token's `kid`, so a new key can
    /// be added before tokens are signed with it and the old one removed
    /// once its tokens have expired.
    ById(HashMap<String, Key>),
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TokenVerifier");
        match &self.keys {
            Keys::One(key) => debug.field("algorithms", &key.validation.algorithms),
            Keys::ById(keys) => debug.field("key_ids", &keys.keys().collect::<Vec<_>>()),
        };
        debug.finish_non_exhaustive()
    }
}

/// Leeway for `exp` (and `nbf`): clocks may disagree by up to a minute.
pub const CLOCK_SKEW_LEEWAY_SECONDS: u64 = 60;

fn validation(algorithm: Algorithm, config: &JwtConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = CLOCK_SKEW_LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    match &config.issuer {
        Some(issuer) => {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        None => validation.iss = None,
    }
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        None => validation.validate_aud = false,
    }
    validation
}

/// Reads a JWK set: every key needs a `kid` and an `alg` of HS256, RS256
/// or ES256 (the algorithm is pinned per key, never taken from a token).
fn key_set(path: &std::path::Path, config: &JwtConfig) -> anyhow::Result<HashMap<String, Key>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("JWT_KEYS_FILE {} cannot be read", path.display()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).with_context(|| {
        format!(
            "JWT_KEYS_FILE {} is not a JWK set ({{\"keys\": [...]}})",
            path.display()
        )
    })?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .context("every key of JWT_KEYS_FILE needs a kid")?;
        let algorithm = match jwk.common.key_algorithm {
            Some(jsonwebtoken::jwk::KeyAlgorithm::HS256) => Algorithm::HS256,
            Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
            _ => bail!("key {kid} of JWT_KEYS_FILE needs an alg of HS256, RS256 or ES256"),
        };
        let key = DecodingKey::from_jwk(jwk)
            .with_context(|| format!("key {kid} of JWT_KEYS_FILE is not usable"))?;
        if keys
            .insert(
                kid.clone(),
                Key {
                    key,
                    validation: validation(algorithm, config),
                },
            )
            .is_some()
        {
            bail!("JWT_KEYS_FILE has two keys with kid {kid}");
        }
    }
    if keys.is_empty() {
        bail!("JWT_KEYS_FILE {} has no keys", path.display());
    }
    Ok(keys)
}

impl TokenVerifier {
    /// Builds the verifier; fails at start-up on an unreadable or unknown key.
    pub fn from_config(config: &JwtConfig) -> anyhow::Result<Self> {
        let (key, algorithm) = match &config.key {
            JwtKeySource::Secret(secret) => (
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            ),
            JwtKeySource::PublicKeyFile(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("JWT_PUBLIC_KEY_FILE {} cannot be read", path.display()))?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    (key, Algorithm::ES256)
                } else {
                    bail!(
                        "JWT_PUBLIC_KEY_FILE {} is neither an RSA nor an EC public key in PEM",
                        path.display()
                    );
                }
            }
            JwtKeySource::KeySetFile(path) => {
                return Ok(Self {
                    keys: Keys::ById(key_set(path, config)?),
                    max_lifetime_seconds: lifetime_seconds(config),
                });
            }
        };
        Ok(Self {
            keys: Keys::One(Box::new(Key {
                key,
                validation: validation(algorithm, config),
            })),
            max_lifetime_seconds: lifetime_seconds(config),
        })
    }

    /// Verifies a token. Every failure is UNAUTHENTICATED, with a reason
    /// that names the check but never echoes the token.
    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        self.verify_until(token).map(|(caller, _)| caller)
    }

    /// Verifies a token; also returns the instant (seconds since the epoch)
    /// past which it stops being accepted: its `exp` plus the leeway.
    pub fn verify_until(&self, token: &str) -> Result<(Caller, i64), AppError> {
        use jsonwebtoken::errors::ErrorKind;
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::ById(keys) => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|_| AppError::Unauthenticated("the token is malformed"))?
                    .kid
                    .ok_or(AppError::Unauthenticated("the token has no key id (kid)"))?;
                keys.get(&kid)
                    .ok_or(AppError::Unauthenticated("the token's key id (kid) is not known"))?
            }
        };
        let data = decode::<Claims>(token, &key.key, &key.validation).map_err(|error| {
            AppError::Unauthenticated(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "the token's algorithm is not accepted"
                }
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
                _ => "the token is malformed",
            })
        })?;
        let claims = data.claims;
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        if claims.exp.saturating_sub(now) > self.max_lifetime_seconds.saturating_add(LEEWAY) {
            return Err(AppError::Unauthenticated(
                "the token's exp is further away than JWT_MAX_LIFETIME_SECONDS allows",
            ));
        }
        let role: Role = claims
            .role
            .parse()
            .map_err(|_| AppError::Unauthenticated("the token's role is unknown"))?;
        let workspace_id = match (&claims.workspace_id, role) {
            (None, Role::Operator) => None,
            (None, _) => return Err(AppError::Unauthenticated("the token lacks workspace_id")),
            (Some(raw), _) => Some(
                WorkspaceId::parse("workspace_id", raw)
                    .map_err(|_| AppError::Unauthenticated("the token's workspace_id is malformed"))?,
            ),
        };
        if claims.sub.is_empty() || claims.sub.len() > 200 {
            return Err(AppError::Unauthenticated(
                "the token's sub must be 1 to 200 bytes",
            ));
        }
        if domain::ids::has_control_or_bidi(&claims.sub) {
            return Err(AppError::Unauthenticated(
                "the token's sub must not contain control or bidirectional formatting characters",
            ));
        }
        let caller = Caller {
            subject: claims.sub,
            workspace_id,
            role,
        };
        Ok((caller, claims.exp.saturating_add(LEEWAY)))
    }
}

/// The leeway, as a timestamp difference.
const LEEWAY: i64 = CLOCK_SKEW_LEEWAY_SECONDS as i64;

fn lifetime_seconds(config: &JwtConfig) -> i64 {
    i64::try_from(config.max_lifetime.as_secs()).unwrap_or(i64::MAX)
}

/// Mints an HS256 token: for the `token` command and for tests.
pub fn mint_hs256(secret: &str, claims: &Claims) -> anyhow::Result<String> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing the token")
}
