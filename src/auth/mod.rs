//! Who is calling, and what they may do.
//!
//! [`TokenVerifier`] turns a bearer token into a [`Caller`]; [`authorize`]
//! turns a caller, a target workspace and an [`Operation`] into a
//! [`WalletScope`] (the capability the service requires) or a refusal.
//! Resolvers never check roles themselves.

mod policy;
pub mod stripe;
mod token;

pub use policy::{Operation, WalletScope, authorize, authorize_operator, may_send_free_form_documents};
pub use token::{CLOCK_SKEW_LEEWAY_SECONDS, Caller, Claims, TokenVerifier, mint_hs256};
