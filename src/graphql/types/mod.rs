//! Public GraphQL types. Names are the contract (../shared/CONTRACT.md);
//! they are set here, apart from storage, so a column rename cannot change
//! the API.

mod auto_top_up;
mod budgets;
mod enums;
mod holds;
mod inputs;
mod objects;
mod payloads;
mod subscription;
mod wallet;
mod webhooks;

pub use auto_top_up::*;
pub use budgets::*;
pub use enums::*;
pub use holds::*;
pub use inputs::*;
pub use objects::*;
pub use payloads::*;
pub use subscription::*;
pub use wallet::*;
pub use webhooks::*;

/// Converts a stored amount to GraphQL `Int`. Writes refuse any balance
/// above `i32::MAX` (`domain::ceiling`), so stored amounts always fit.
pub fn int(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}
