//! People: the accounts that share a home, each with a role ([`user`]), the datasets granted to
//! reviewers and viewers, and the API tokens they use ([`token`]). Passwords are Argon2id and
//! tokens are kept as digests: the store holds neither in plain text.

pub mod audit;
pub mod session;
pub mod token;
pub mod user;

use std::collections::BTreeSet;

use user::{Role, User};

/// Which datasets someone sees: admins and maintainers (and the home's owner, who holds no
/// account) all of them, reviewers and viewers those granted to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(BTreeSet<String>),
}

impl Scope {
    pub fn sees(&self, dataset: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(granted) => granted.contains(dataset),
        }
    }
}

impl User {
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin | Role::Maintainer => Scope::All,
            Role::Reviewer | Role::Viewer => Scope::Only(self.grants.iter().cloned().collect()),
        }
    }
}
