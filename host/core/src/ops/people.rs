//! Accounts, their grants and API tokens.

use super::*;
use crate::people::token::{self, Created, Token};
use crate::people::user::{self, Role, User};
use crate::people::{audit, session};

impl Home {
    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<User> {
        user::add(&mut *self.store()?, name, role, password)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        user::list(&*self.store()?)
    }

    pub fn user(&self, name: &str) -> Result<User> {
        user::get(&*self.store()?, name)
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<User> {
        user::set_password(&mut *self.store()?, name, password)
    }

    /// Disables (`true`) or enables an account.
    pub fn disable_user(&self, name: &str, disabled: bool) -> Result<User> {
        user::set_disabled(&mut *self.store()?, name, disabled)
    }

    pub fn delete_user(&self, name: &str) -> Result<()> {
        user::delete(&mut *self.store()?, name)
    }

    /// Grants dataset `dataset` to account `name` (`false`: takes it back).
    pub fn grant(&self, name: &str, dataset: &str, granted: bool) -> Result<User> {
        user::grant(&mut *self.store()?, name, dataset, granted)
    }

    /// A new API token for account `user`: its secret is in the answer, and nowhere else.
    pub fn create_token(&self, user: &str, name: &str) -> Result<Created> {
        token::create(&mut *self.store()?, user, name)
    }

    pub fn tokens(&self, user: &str) -> Result<Vec<Token>> {
        token::list(&*self.store()?, user)
    }

    pub fn revoke_token(&self, user: &str, name: &str) -> Result<()> {
        token::revoke(&mut *self.store()?, user, name)
    }

    /// The enabled account an API token's or a login's secret is of, if any (a token's use
    /// is noted).
    pub fn authenticate(&self, secret: &str) -> Result<Option<User>> {
        let store = self.store()?;
        match secret.starts_with(session::PREFIX) {
            true => session::authenticate(&store, secret),
            false => token::authenticate(&store, secret),
        }
    }

    /// Whether any account exists: without one, the API on loopback is open (the local mode).
    pub fn has_accounts(&self) -> Result<bool> {
        user::any(&*self.store()?)
    }

    /// Logs in: a new session's secret and its account, if `password` is `name`'s and the
    /// account is enabled; `None` otherwise (whichever was wrong).
    pub fn login(&self, name: &str, password: &str) -> Result<Option<(User, String)>> {
        let mut store = self.store()?;
        let Some(user) = user::verify(&store, name, password)? else {
            return Ok(None);
        };
        let secret = session::start(&mut store, &user)?;
        Ok(Some((user, secret)))
    }

    /// Ends the login whose secret this is.
    pub fn logout(&self, secret: &str) -> Result<()> {
        session::end(&mut *self.store()?, secret)
    }

    /// Records that `actor` did `action` to `target` (see [`audit`]).
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        status: Option<u16>,
    ) -> Result<()> {
        audit::record(&*self.store()?, actor, action, target, status)
    }

    /// The audit log, newest first.
    pub fn audit_log(&self, query: &audit::Query) -> Result<Vec<audit::Entry>> {
        audit::list(&*self.store()?, query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::{token, user};

    /// A password opens its account and nothing else; a disabled account opens with neither
    /// its password nor its tokens; a revoked token opens nothing.
    #[test]
    fn passwords_and_tokens_open_their_own_account_only() {
        let dir = std::env::temp_dir().join(format!("prelabel-people-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = Home::new(&dir, None);
        home.add_user("ann", Role::Reviewer, "correct horse")
            .expect("ann");
        home.add_user("bo", Role::Viewer, "battery staple")
            .expect("bo");
        let store = home.store().expect("a store");
        let opens = |name: &str, password: &str| {
            user::verify(&store, name, password)
                .expect("verify")
                .map(|u| u.name)
        };
        assert_eq!(opens("ann", "correct horse").as_deref(), Some("ann"));
        assert_eq!(opens("ann", "battery staple"), None);
        assert_eq!(opens("nobody", "correct horse"), None);
        let made = home.create_token("ann", "laptop").expect("a token");
        let who = |secret: &str| {
            token::authenticate(&store, secret)
                .expect("authenticate")
                .map(|u| u.name)
        };
        assert_eq!(who(&made.secret).as_deref(), Some("ann"));
        assert_eq!(who("plt_0000"), None);
        assert_eq!(who(made.secret.trim_start_matches(token::PREFIX)), None);
        assert!(
            home.tokens("ann").expect("listed")[0]
                .last_used_at
                .is_some()
        );
        drop(store);
        home.disable_user("ann", true).expect("disabled");
        let store = home.store().expect("a store");
        assert!(
            user::verify(&store, "ann", "correct horse")
                .expect("verify")
                .is_none()
        );
        assert!(
            token::authenticate(&store, &made.secret)
                .expect("authenticate")
                .is_none()
        );
        drop(store);
        home.disable_user("ann", false).expect("enabled");
        home.revoke_token("ann", "laptop").expect("revoked");
        let store = home.store().expect("a store");
        assert!(
            token::authenticate(&store, &made.secret)
                .expect("authenticate")
                .is_none()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
