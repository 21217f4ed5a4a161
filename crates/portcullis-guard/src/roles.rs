//! Roles: a permission level per category, and caps on what a role may do with the permissions it has.
//! Built in: `viewer` (read everything), `operator` (read everything, write security: blocks, grants, pauses),
//! `admin` (everything). Custom roles come from config.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Security,
    Network,
    Device,
    RuleManagement,
    Analytics,
    System,
    /// Copying users' traffic to sensors (`mirror_traffic`): a permission of its own, which a custom role has only
    /// when it names it.
    Mirroring,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Security,
        Category::Network,
        Category::Device,
        Category::RuleManagement,
        Category::Analytics,
        Category::System,
        Category::Mirroring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Security => "security",
            Self::Network => "network",
            Self::Device => "device",
            Self::RuleManagement => "rule_management",
            Self::Analytics => "analytics",
            Self::System => "system",
            Self::Mirroring => "mirroring",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    None,
    Read,
    Write,
    Admin,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        })
    }
}

/// What a tool needs: a level in a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub category: Category,
    pub level: Level,
}

/// Limits on arguments, per role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caps {
    /// Widest IPv4 block as a prefix length (24 = at most a /24).
    pub min_block_prefix_v4: u8,
    pub min_block_prefix_v6: u8,
    /// Longest block or grant in seconds; `None` allows `permanent`.
    pub max_duration_seconds: Option<i64>,
    /// Most addresses in one bulk call.
    pub max_bulk: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self::operator()
    }
}

impl Caps {
    pub fn operator() -> Self {
        Self { min_block_prefix_v4: 24, min_block_prefix_v6: 64, max_duration_seconds: Some(7 * 86_400), max_bulk: 100 }
    }

    pub fn admin() -> Self {
        Self { min_block_prefix_v4: 8, min_block_prefix_v6: 32, max_duration_seconds: None, max_bulk: 100_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    #[serde(default)]
    pub permissions: BTreeMap<Category, Level>,
    #[serde(default)]
    pub caps: Caps,
}

impl Role {
    pub fn level(&self, category: Category) -> Level {
        self.permissions.get(&category).copied().unwrap_or(Level::None)
    }

    pub fn allows(&self, need: Requirement) -> bool {
        self.level(need.category) >= need.level
    }

    fn uniform(level: Level, caps: Caps) -> Self {
        Self { permissions: Category::ALL.iter().map(|c| (*c, level)).collect(), caps }
    }
}

/// The role table: built-in roles plus custom ones (a custom role may not redefine a built-in one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
}

pub const BUILTIN_ROLES: [&str; 3] = ["viewer", "operator", "admin"];

impl Default for Roles {
    fn default() -> Self {
        let mut roles = BTreeMap::new();
        roles.insert("viewer".to_string(), Role::uniform(Level::Read, Caps::operator()));
        let mut operator = Role::uniform(Level::Read, Caps::operator());
        operator.permissions.insert(Category::Security, Level::Write);
        // A narrow copy for a few hours is SOC work; copying everything needs an admin (the tool says so).
        operator.permissions.insert(Category::Mirroring, Level::Write);
        roles.insert("operator".to_string(), operator);
        roles.insert("admin".to_string(), Role::uniform(Level::Admin, Caps::admin()));
        Self { roles }
    }
}

impl Roles {
    pub fn with_custom(custom: BTreeMap<String, Role>) -> Result<Self, String> {
        let mut table = Self::default();
        for (name, role) in custom {
            if BUILTIN_ROLES.contains(&name.as_str()) {
                return Err(format!("security.roles.{name}: built-in roles cannot be redefined"));
            }
            table.roles.insert(name, role);
        }
        Ok(table)
    }

    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_follow_the_brief() {
        let roles = Roles::default();
        let need = |category, level| Requirement { category, level };
        let viewer = roles.get("viewer").unwrap();
        let operator = roles.get("operator").unwrap();
        let admin = roles.get("admin").unwrap();
        assert!(viewer.allows(need(Category::RuleManagement, Level::Read)));
        assert!(!viewer.allows(need(Category::Security, Level::Write)));
        assert!(operator.allows(need(Category::Security, Level::Write)));
        assert!(!operator.allows(need(Category::RuleManagement, Level::Write)));
        assert!(admin.allows(need(Category::System, Level::Admin)));
        assert!(Roles::with_custom([("admin".to_string(), viewer.clone())].into()).is_err());
    }
}
