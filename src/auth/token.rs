//! JWT verification. The algorithm is pinned by the configured key: HS256
//! for `JWT_SECRET`, RS256 or ES256 for a public key file (by the key's
//! type). `exp` is required; `iss` and `aud` are checked when configured;
//! the default leeway of 60 seconds absorbs clock skew.

use std::fmt;

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{JwtConfig, JwtKeySource};
use crate::domain::catalogue::Role;
use crate::domain::ids::WorkspaceId;
use crate::error::AppError;

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
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
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
        };
        let mut validation = Validation::new(algorithm);
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
        Ok(Self { key, validation })
    }

    /// Verifies a token. Every failure is UNAUTHENTICATED, with a reason
    /// that names the check but never echoes the token.
    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|error| {
            AppError::Unauthenticated(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
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
        Ok(Caller {
            subject: claims.sub,
            workspace_id,
            role,
        })
    }
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
