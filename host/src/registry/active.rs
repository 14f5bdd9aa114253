//! A pipeline's active plugin versions: one small JSON object per
//! pipeline, so that reading them (or watching them) costs one request
//! whatever the number of plugins.
//!
//! Invariant: each plugin's history holds the versions it was active at
//! before, oldest first, never the current one; rollback returns to the
//! last of them and removes it, so rollbacks walk back one version at a
//! time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The active versions of one pipeline's plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveVersions {
    /// By plugin name.
    pub plugins: BTreeMap<String, ActivePlugin>,
}

/// One plugin's active version and the ones before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivePlugin {
    /// The version stages naming `name@active` run.
    pub version: String,
    /// Earlier active versions, oldest first: what rollback returns to.
    #[serde(default)]
    pub history: Vec<String>,
}

/// What an activation or a rollback changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The plugin.
    pub name: String,
    /// The version active before (`None`: none was).
    pub from: Option<String>,
    /// The version active now.
    pub to: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            Some(from) if *from == self.to => write!(f, "{} {} (unchanged)", self.name, self.to),
            Some(from) => write!(f, "{} {from} -> {}", self.name, self.to),
            None => write!(f, "{} (none) -> {}", self.name, self.to),
        }
    }
}

impl ActiveVersions {
    /// The active version of `name`.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        self.plugins.get(name).map(|p| p.version.as_str())
    }

    /// Make `version` the active version of `name`. Activating the active
    /// version changes nothing.
    pub fn activate(&mut self, name: &str, version: &str) -> Change {
        let change = |from: Option<String>| Change {
            name: name.to_owned(),
            from,
            to: version.to_owned(),
        };
        match self.plugins.get_mut(name) {
            Some(active) if active.version == version => change(Some(active.version.clone())),
            Some(active) => {
                let from = std::mem::replace(&mut active.version, version.to_owned());
                active.history.push(from.clone());
                change(Some(from))
            }
            None => {
                self.plugins.insert(
                    name.to_owned(),
                    ActivePlugin {
                        version: version.to_owned(),
                        history: Vec::new(),
                    },
                );
                change(None)
            }
        }
    }

    /// Return `name` to the version active before the current one; `None`
    /// when there is no earlier version.
    pub fn rollback(&mut self, name: &str) -> Option<Change> {
        let active = self.plugins.get_mut(name)?;
        let previous = active.history.pop()?;
        let from = std::mem::replace(&mut active.version, previous.clone());
        Some(Change {
            name: name.to_owned(),
            from: Some(from),
            to: previous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollbacks_walk_back_one_activation_at_a_time() {
        let mut active = ActiveVersions::default();
        assert_eq!(active.activate("score", "1").from, None);
        assert_eq!(active.activate("score", "2").from.as_deref(), Some("1"));
        active.activate("score", "3");
        let unchanged = active.activate("score", "3");
        assert_eq!(unchanged.to_string(), "score 3 (unchanged)");
        assert_eq!(active.plugins["score"].history, ["1", "2"]);
        assert_eq!(
            active.rollback("score").unwrap().to_string(),
            "score 3 -> 2"
        );
        assert_eq!(active.rollback("score").unwrap().to, "1");
        assert_eq!(active.rollback("score"), None);
        assert_eq!(active.version_of("score"), Some("1"));
        assert_eq!(active.rollback("parse"), None);
    }
}
