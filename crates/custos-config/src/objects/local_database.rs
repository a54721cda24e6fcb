//! Local users and usergroups (`/api/configuration/aaa/local_database`), per the SPS reference.

use serde::{Deserialize, Serialize};

use super::passwords::Passwords;
use super::rules;
use crate::problem::Problems;
use crate::reference::{Ref, RefTarget};
use crate::schema::{ConfigObject, Context};

pub const USERS: &str = "/api/configuration/aaa/local_database/users";
pub const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
/// The key of the built-in `admin` user; negative keys mark undeletable built-ins, as in SPS.
pub const ADMIN_KEY: &str = "-1";
pub const ADMIN_NAME: &str = "admin";

pub struct Users;
impl RefTarget for Users {
    const NODE: &'static str = USERS;
}

/// A local user. `password_created` is set by the server whenever the password reference changes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Ref<Passwords>>,
    #[serde(default)]
    pub password_created: i64,
}

impl ConfigObject for LocalUser {
    fn complete(&mut self, ctx: &Context<'_>) {
        let previous: Option<LocalUser> = ctx.previous.and_then(|p| LocalUser::deserialize(p).ok());
        self.password_created = match (&previous, &self.password) {
            (_, None) => 0,
            (Some(prev), Some(pw)) if prev.password.as_ref() == Some(pw) => prev.password_created,
            (_, Some(_)) => ctx.now,
        };
    }

    fn validate(&self, ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        if self.name.contains(':') {
            // HTTP Basic splits user and password at the first colon.
            problems.add("name", "must not contain ':'");
        }
        let is_admin = ctx.key == Some(ADMIN_KEY);
        if is_admin && self.name != ADMIN_NAME {
            problems.add("name", "the built-in admin user cannot be renamed");
        }
        if is_admin && self.password.is_none() {
            problems.add("password", "the built-in admin user must have a password");
        }
    }
}

/// A local usergroup. Members are references to local users (their keys, not their names).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalGroup {
    pub name: String,
    #[serde(default)]
    pub members: Vec<Ref<Users>>,
}

impl ConfigObject for LocalGroup {
    fn validate(&self, _ctx: &Context<'_>, problems: &mut Problems<'_>) {
        rules::name(problems, "name", &self.name);
        rules::no_duplicates(problems, "members", &self.members);
    }
}
