//! Jurisdictions (辖区): where everything belongs, and who may see it.
//!
//! Two hierarchies cover the same ground:
//! * administrative: city (市) → district (区) → sub-district (街道) → community (社区) →
//!   grid (网格);
//! * police: district → police station (派出所) → police district (警务区).
//!
//! Every located record carries its [`Chain`]: the code of the node it falls in at each
//! level. A user is bound to one node; a [`Scope`] covers a record when the record's chain
//! names that node at the node's level. So a sub-district officer sees what lies in their
//! sub-district, a station officer what lies in their station's area, and a city-level
//! user everything.
//!
//! Geometry (which point lies in which node) lives in the geo crate; this module knows only
//! the tree.

mod atlas;

use std::collections::BTreeMap;
use std::fmt;

pub use atlas::{Atlas, Placement};

/// A level of either hierarchy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum JurisdictionKind {
    City,
    District,
    Subdistrict,
    Community,
    Grid,
    PoliceStation,
    PoliceDistrict,
}

impl JurisdictionKind {
    pub const ALL: [JurisdictionKind; 7] = [
        JurisdictionKind::City,
        JurisdictionKind::District,
        JurisdictionKind::Subdistrict,
        JurisdictionKind::Community,
        JurisdictionKind::Grid,
        JurisdictionKind::PoliceStation,
        JurisdictionKind::PoliceDistrict,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JurisdictionKind::City => "city",
            JurisdictionKind::District => "district",
            JurisdictionKind::Subdistrict => "subdistrict",
            JurisdictionKind::Community => "community",
            JurisdictionKind::Grid => "grid",
            JurisdictionKind::PoliceStation => "police_station",
            JurisdictionKind::PoliceDistrict => "police_district",
        }
    }

    pub fn parse(text: &str) -> Option<JurisdictionKind> {
        JurisdictionKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The kind a node of this kind must hang under (`None` for the city, the root).
    pub const fn parent_kind(self) -> Option<JurisdictionKind> {
        match self {
            JurisdictionKind::City => None,
            JurisdictionKind::District => Some(JurisdictionKind::City),
            JurisdictionKind::Subdistrict => Some(JurisdictionKind::District),
            JurisdictionKind::Community => Some(JurisdictionKind::Subdistrict),
            JurisdictionKind::Grid => Some(JurisdictionKind::Community),
            JurisdictionKind::PoliceStation => Some(JurisdictionKind::District),
            JurisdictionKind::PoliceDistrict => Some(JurisdictionKind::PoliceStation),
        }
    }

    /// Whether a user may be bound to a node of this kind (grids and police districts are
    /// too small to administer accounts from).
    pub const fn can_bind_users(self) -> bool {
        matches!(
            self,
            JurisdictionKind::City
                | JurisdictionKind::District
                | JurisdictionKind::Subdistrict
                | JurisdictionKind::Community
                | JurisdictionKind::PoliceStation
        )
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JurisdictionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the tree.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Jurisdiction {
    /// Official code where one exists (GB/T 2260 for districts, NBS 9/12 digits below).
    pub code: String,
    pub kind: JurisdictionKind,
    pub parent: Option<String>,
    pub name_zh: String,
    pub name_en: Option<String>,
}

/// The code of the node a place falls in at each level (`None` where unknown or where the
/// place is outside every node of that level).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Chain {
    codes: [Option<String>; 7],
}

impl Chain {
    pub fn get(&self, kind: JurisdictionKind) -> Option<&str> {
        self.codes[kind.index()].as_deref()
    }

    pub fn set(&mut self, kind: JurisdictionKind, code: impl Into<String>) {
        self.codes[kind.index()] = Some(code.into());
    }

    /// The deepest administrative node named, for display.
    pub fn most_specific(&self) -> Option<(JurisdictionKind, &str)> {
        JurisdictionKind::ALL.into_iter().rev().find_map(|kind| self.get(kind).map(|code| (kind, code)))
    }
}

/// What a user may see and change: everything whose chain names `code` at `kind`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Scope {
    pub kind: JurisdictionKind,
    pub code: String,
}

impl Scope {
    pub fn covers(&self, chain: &Chain) -> bool {
        chain.get(self.kind) == Some(self.code.as_str())
    }
}

#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum JurisdictionError {
    #[error("jurisdiction code {0:?} is malformed: use 1–32 characters of 0–9, A–Z, a–z, '_' or '-'")]
    MalformedCode(String),
    #[error("jurisdiction {0} has an empty Chinese name")]
    MissingName(String),
    #[error("jurisdiction {0} has a name with control or invisible formatting characters")]
    HiddenCharacters(String),
    #[error("jurisdiction {0} appears twice")]
    Duplicate(String),
    #[error("jurisdiction {code} ({kind}) needs a parent of kind {expected}")]
    MissingParent { code: String, kind: JurisdictionKind, expected: JurisdictionKind },
    #[error("jurisdiction {code} ({kind}): parent {parent} does not exist")]
    UnknownParent { code: String, kind: JurisdictionKind, parent: String },
    #[error("jurisdiction {code} ({kind}): parent {parent} is a {parent_kind}, expected a {expected}")]
    WrongParentKind {
        code: String,
        kind: JurisdictionKind,
        parent: String,
        parent_kind: JurisdictionKind,
        expected: JurisdictionKind,
    },
    #[error("the city {0} cannot have a parent")]
    CityWithParent(String),
    #[error("there can be only one city, found {0} and {1}")]
    TwoCities(String, String),
    #[error("jurisdiction {0} does not exist")]
    Unknown(String),
}

fn valid_code(code: &str) -> bool {
    (1..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The whole tree, as the engine holds it in memory.
#[derive(Clone, Debug, Default)]
pub struct JurisdictionTree {
    nodes: BTreeMap<String, Jurisdiction>,
}

impl JurisdictionTree {
    /// Builds a tree from nodes in any order, checking every rule across the set.
    pub fn from_nodes(nodes: impl IntoIterator<Item = Jurisdiction>) -> Result<JurisdictionTree, JurisdictionError> {
        let mut tree = JurisdictionTree::default();
        for node in nodes {
            check_node(&node)?;
            if tree.nodes.contains_key(&node.code) {
                return Err(JurisdictionError::Duplicate(node.code));
            }
            tree.nodes.insert(node.code.clone(), node);
        }
        let mut city: Option<&str> = None;
        for node in tree.nodes.values() {
            if node.kind == JurisdictionKind::City {
                if let Some(other) = city {
                    return Err(JurisdictionError::TwoCities(other.to_string(), node.code.clone()));
                }
                city = Some(&node.code);
            }
            tree.check_parent(node)?;
        }
        Ok(tree)
    }

    pub fn get(&self, code: &str) -> Option<&Jurisdiction> {
        self.nodes.get(code)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes in code order.
    pub fn iter(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.nodes.values()
    }

    pub fn children<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Jurisdiction> + 'a {
        self.nodes.values().filter(move |node| node.parent.as_deref() == Some(code))
    }

    /// Checks that `node` may be added to the tree as it stands.
    pub fn check_insert(&self, node: &Jurisdiction) -> Result<(), JurisdictionError> {
        check_node(node)?;
        if self.nodes.contains_key(&node.code) {
            return Err(JurisdictionError::Duplicate(node.code.clone()));
        }
        if node.kind == JurisdictionKind::City
            && let Some(city) = self.nodes.values().find(|n| n.kind == JurisdictionKind::City)
        {
            return Err(JurisdictionError::TwoCities(city.code.clone(), node.code.clone()));
        }
        self.check_parent(node)
    }

    /// Adds a checked node.
    pub fn insert(&mut self, node: Jurisdiction) {
        self.nodes.insert(node.code.clone(), node);
    }

    /// Renames a node: only the names of `node` are taken (its kind and parent stay).
    /// Returns whether the node exists.
    pub fn rename(&mut self, node: &Jurisdiction) -> bool {
        match self.nodes.get_mut(&node.code) {
            Some(existing) => {
                existing.name_zh = node.name_zh.clone();
                existing.name_en = node.name_en.clone();
                true
            }
            None => false,
        }
    }

    /// Where city-wide records (the code tables) lie: at the city alone, so that only a
    /// scope bound to the whole city covers them. Empty while the tree has no city, which
    /// no user's scope covers.
    pub fn city_chain(&self) -> Chain {
        let mut chain = Chain::default();
        if let Some(city) = self.nodes.values().find(|n| n.kind == JurisdictionKind::City) {
            chain.set(JurisdictionKind::City, city.code.clone());
        }
        chain
    }

    /// The chain of a node: the node itself and every ancestor, by level.
    pub fn chain_of(&self, code: &str) -> Option<Chain> {
        let mut chain = Chain::default();
        let mut current = self.nodes.get(code)?;
        loop {
            chain.set(current.kind, current.code.clone());
            match current.parent.as_deref().and_then(|parent| self.nodes.get(parent)) {
                Some(parent) => current = parent,
                None => return Some(chain),
            }
        }
    }

    /// The scope of a user bound to `code`.
    pub fn scope_of(&self, code: &str) -> Result<Scope, JurisdictionError> {
        let node = self.nodes.get(code).ok_or_else(|| JurisdictionError::Unknown(code.to_string()))?;
        Ok(Scope { kind: node.kind, code: node.code.clone() })
    }

    fn check_parent(&self, node: &Jurisdiction) -> Result<(), JurisdictionError> {
        match (node.kind.parent_kind(), &node.parent) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(JurisdictionError::CityWithParent(node.code.clone())),
            (Some(expected), None) => {
                Err(JurisdictionError::MissingParent { code: node.code.clone(), kind: node.kind, expected })
            }
            (Some(expected), Some(parent_code)) => match self.nodes.get(parent_code) {
                None => Err(JurisdictionError::UnknownParent {
                    code: node.code.clone(),
                    kind: node.kind,
                    parent: parent_code.clone(),
                }),
                Some(parent) if parent.kind != expected => Err(JurisdictionError::WrongParentKind {
                    code: node.code.clone(),
                    kind: node.kind,
                    parent: parent_code.clone(),
                    parent_kind: parent.kind,
                    expected,
                }),
                Some(_) => Ok(()),
            },
        }
    }
}

fn check_node(node: &Jurisdiction) -> Result<(), JurisdictionError> {
    if !valid_code(&node.code) {
        return Err(JurisdictionError::MalformedCode(node.code.clone()));
    }
    if node.name_zh.trim().is_empty() {
        return Err(JurisdictionError::MissingName(node.code.clone()));
    }
    let names = std::iter::once(node.name_zh.as_str()).chain(node.name_en.as_deref());
    if names.into_iter().any(|name| crate::text::has_hidden(name, false)) {
        return Err(JurisdictionError::HiddenCharacters(node.code.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
