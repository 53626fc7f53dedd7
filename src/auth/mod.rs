//! Who is calling and what they may do: passwords, login tokens, the in-memory auth snapshot (users,
//! token hashes, role permissions) kept fresh from SQLite, and failed-login throttling.

pub mod cache;
pub mod passwords;
pub mod throttle;
pub mod tokens;

pub use cache::{AuthCache, AuthSnapshot, UserEntry};
