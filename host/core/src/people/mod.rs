//! People: the accounts that share a home, each with a role ([`user`]), the datasets granted to
//! reviewers and viewers, and the API tokens they use ([`token`]). Passwords are Argon2id and
//! tokens are kept as digests: the store holds neither in plain text.

pub mod token;
pub mod user;
