//! Privileges: the built-in usergroups and the ACL objects they grant.
//!
//! The table reproduces `GET /api/configuration/aaa/acls` of the SPS REST reference (seeds 001/002,
//! SPS 5.7–6.5, which include the `api` group), followed by the objects that Custos endpoints need
//! and SPS names elsewhere (`/special/active_sessions`, seed 000). ACLs are read-only over REST.

use std::collections::BTreeMap;

/// The level of access a privilege grants. `Write` implies `Read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Write,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }
}

/// One row of the ACL table: the members of `group` hold `permission` on `objects`.
#[derive(Debug)]
pub struct AclEntry {
    pub group: &'static str,
    pub objects: &'static [&'static str],
    pub permission: Permission,
}

/// Privilege object names, as SPS spells them.
pub mod object {
    pub const BASIC: &str = "/special/basic";
    pub const AUTH: &str = "/special/auth";
    pub const SEARCH: &str = "/special/searchmenu";
    pub const CHANGELOG: &str = "/special/changelog";
    pub const POLICIES: &str = "/special/pol";
    pub const SSH: &str = "/special/ssh";
    pub const RDP: &str = "/special/rdp";
    pub const TELNET: &str = "/special/telnet";
    pub const VNC: &str = "/special/vnc";
    pub const ICA: &str = "/special/ica";
    pub const HTTP: &str = "/special/http";
    pub const INDEXING_SEARCH: &str = "/special/search/search";
    pub const INDEXING_BAP: &str = "/special/bap";
    pub const RPC_API: &str = "/special/rpcapi";
    pub const INDEXER: &str = "/special/indexer";
    pub const ACTIVE_SESSIONS: &str = "/special/active_sessions";
    /// "Search in all connections": members see every session regardless of audit-data rules.
    pub const SEARCH_ALL: &str = "/special/search/all_connections";
}

use Permission::{Read, Write};

macro_rules! acl {
    ($group:literal, [$($obj:expr),+], $perm:expr) => {
        AclEntry { group: $group, objects: &[$($obj),+], permission: $perm }
    };
}

/// The ACL table, in the order `GET /api/configuration/aaa/acls` shows it.
pub static BUILTIN_ACLS: &[AclEntry] = &[
    acl!("basic-view", [object::BASIC], Read),
    acl!("basic-write", [object::BASIC], Write),
    acl!("auth-view", [object::AUTH], Read),
    acl!("auth-write", [object::AUTH], Write),
    acl!("search", [object::SEARCH], Read),
    acl!("changelog", [object::CHANGELOG], Read),
    acl!("policies-view", [object::POLICIES], Read),
    acl!("policies-write", [object::POLICIES], Write),
    acl!("ssh-view", [object::SSH], Read),
    acl!("ssh-write", [object::SSH], Write),
    acl!("rdp-view", [object::RDP], Read),
    acl!("rdp-write", [object::RDP], Write),
    acl!("telnet-view", [object::TELNET], Read),
    acl!("telnet-write", [object::TELNET], Write),
    acl!("vnc-view", [object::VNC], Read),
    acl!("vnc-write", [object::VNC], Write),
    acl!(
        "indexing",
        [object::INDEXING_SEARCH, object::INDEXING_BAP],
        Write
    ),
    acl!("ica-view", [object::ICA], Read),
    acl!("ica-write", [object::ICA], Write),
    acl!("api", [object::RPC_API], Write),
    acl!("http-view", [object::HTTP], Read),
    acl!("http-write", [object::HTTP], Write),
    acl!("indexer-view", [object::INDEXER], Read),
    acl!("indexer-write", [object::INDEXER], Write),
    // Custos additions, after the SPS table so that clients comparing the prefix still match.
    acl!("sessions-view", [object::ACTIVE_SESSIONS], Read),
    acl!("sessions-write", [object::ACTIVE_SESSIONS], Write),
    acl!("search-all", [object::SEARCH_ALL], Read),
];

/// Names of the usergroups that exist on a fresh installation, one per ACL row.
pub fn builtin_group_names() -> impl Iterator<Item = &'static str> {
    let mut seen = Vec::new();
    BUILTIN_ACLS.iter().filter_map(move |e| {
        if seen.contains(&e.group) {
            None
        } else {
            seen.push(e.group);
            Some(e.group)
        }
    })
}

/// What a node demands of the caller. Every node names one: there is no default (deny by default).
#[derive(Clone, Copy, Debug)]
pub enum Guard {
    /// Any authenticated user (directory listings, own user info).
    Authenticated,
    /// The named privilege object: read for reading, write for writing.
    Object(&'static str),
    /// Any one of the named objects (shared resources such as password objects).
    AnyOf(&'static [&'static str]),
}

/// The privileges a login holds, computed once at login from its group memberships.
/// Changes to groups therefore take effect at the next login, as SPS documents.
#[derive(Clone, Debug, Default)]
pub struct Privileges {
    superuser: bool,
    grants: BTreeMap<&'static str, Permission>,
    /// The usergroups they came from: audit-data rules name groups, not privilege objects.
    groups: Vec<String>,
}

impl Privileges {
    /// The built-in `admin` holds every privilege.
    pub fn superuser() -> Self {
        Privileges {
            superuser: true,
            grants: BTreeMap::new(),
            groups: Vec::new(),
        }
    }

    pub fn from_groups<'a>(groups: impl IntoIterator<Item = &'a str>) -> Self {
        let groups: Vec<&str> = groups.into_iter().collect();
        let mut grants: BTreeMap<&'static str, Permission> = BTreeMap::new();
        for entry in BUILTIN_ACLS.iter().filter(|e| groups.contains(&e.group)) {
            for object in entry.objects {
                let slot = grants.entry(object).or_insert(entry.permission);
                *slot = (*slot).max(entry.permission);
            }
        }
        Privileges {
            superuser: false,
            grants,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The usergroups the login is a member of (empty for the superuser, who needs none).
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn is_superuser(&self) -> bool {
        self.superuser
    }

    pub fn holds(&self, object: &str, need: Permission) -> bool {
        self.superuser || self.grants.get(object).is_some_and(|p| *p >= need)
    }

    pub fn allows(&self, guard: Guard, need: Permission) -> bool {
        match guard {
            Guard::Authenticated => true,
            Guard::Object(object) => self.holds(object, need),
            Guard::AnyOf(objects) => objects.iter().any(|o| self.holds(o, need)),
        }
    }

    /// Whether the login may change anything at all (and so may hold the configuration lock).
    pub fn may_write_somewhere(&self) -> bool {
        self.superuser || self.grants.values().any(|p| *p == Permission::Write)
    }

    /// The privilege objects held, for `GET /api/user_info`.
    pub fn grants(&self) -> impl Iterator<Item = (&'static str, Permission)> + '_ {
        self.grants.iter().map(|(o, p)| (*o, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_and_groups_combine() {
        let p = Privileges::from_groups(["ssh-write", "auth-view"]);
        assert!(p.holds(object::SSH, Read));
        assert!(p.holds(object::SSH, Write));
        assert!(p.holds(object::AUTH, Read));
        assert!(!p.holds(object::AUTH, Write));
        assert!(!p.holds(object::BASIC, Read));
    }

    #[test]
    fn unknown_groups_grant_nothing() {
        let p = Privileges::from_groups(["no-such-group"]);
        assert!(!p.may_write_somewhere());
        assert!(!p.allows(Guard::Object(object::SEARCH), Read));
        assert!(p.allows(Guard::Authenticated, Read));
    }

    #[test]
    fn builtin_group_names_are_unique_and_in_table_order() {
        let names: Vec<_> = builtin_group_names().collect();
        assert_eq!(names[0], "basic-view");
        assert_eq!(names.len(), BUILTIN_ACLS.len());
        assert!(names.contains(&"api"));
    }
}
