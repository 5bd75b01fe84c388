//! The jurisdiction tree and its shapes: loaded into memory at start, extended by imports,
//! and the lookup of a point's chain (the atlas).

use std::collections::HashMap;
use std::sync::Arc;

use fangkong_core::audit::Outcome;
use fangkong_core::auth::Action;
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::{
    Atlas, Chain, Jurisdiction, JurisdictionError, JurisdictionKind, JurisdictionTree, Scope,
};
use fangkong_geo::{Area, LatLon};
use fangkong_store::{Audited, NodeWrite, Outbox};

use crate::boundaries::{self, BoundaryImport};
use crate::{Caller, Engine, EngineError, Kernel};

/// Where a point is: its chain in both hierarchies and its H3 cell.
#[derive(Clone, PartialEq, Debug)]
pub struct Location {
    pub point: LatLon,
    pub chain: Chain,
    /// The H3 cell at the engine's configured resolution (`EngineConfig::h3_resolution`).
    pub h3_cell: u64,
    pub h3_resolution: u8,
}

/// A node with its shape, for GeoJSON out.
#[derive(Clone, Debug)]
pub struct Placed {
    pub node: Jurisdiction,
    pub shape: Option<Area>,
}

/// What a boundary import changed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImportSummary {
    pub level: JurisdictionKind,
    pub added: usize,
    pub updated: usize,
    pub vertices: usize,
}

impl Kernel {
    pub(crate) async fn load_jurisdictions(&self) -> Result<(), EngineError> {
        let tree = JurisdictionTree::from_nodes(self.store.list_jurisdictions().await?)?;
        let shapes: HashMap<String, Area> = self.store.list_jurisdiction_shapes().await?.into_iter().collect();
        let atlas = Atlas::new(&tree, shapes);
        *self.jurisdictions.write().expect("jurisdictions lock") = tree;
        *self.atlas.write().expect("atlas lock") = Arc::new(atlas);
        Ok(())
    }

    /// Every node, in code order.
    pub async fn jurisdictions(&self, caller: &Caller) -> Result<Vec<Jurisdiction>, EngineError> {
        self.authorize(caller, Action::ReadJurisdictions, None, "jurisdiction.list", None).await?;
        Ok(self.jurisdictions.read().expect("jurisdictions lock").iter().cloned().collect())
    }

    /// One node with its shape.
    pub async fn jurisdiction_shape(&self, caller: &Caller, code: &str) -> Result<Placed, EngineError> {
        self.authorize(caller, Action::ReadJurisdictions, None, "jurisdiction.read", None).await?;
        let node = self
            .jurisdiction(code)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: code.to_string() })?;
        Ok(Placed { shape: self.atlas().shape(code).cloned(), node })
    }

    /// Nodes with their shapes: of one `kind` if given, and inside `within` (the node
    /// itself and its descendants) if given.
    pub async fn jurisdiction_shapes(
        &self,
        caller: &Caller,
        kind: Option<JurisdictionKind>,
        within: Option<&str>,
    ) -> Result<Vec<Placed>, EngineError> {
        self.authorize(caller, Action::ReadJurisdictions, None, "jurisdiction.list", None).await?;
        let atlas = self.atlas();
        let tree = self.jurisdictions.read().expect("jurisdictions lock");
        let within = match within {
            Some(code) => match tree.get(code) {
                Some(node) => Some((node.kind, code)),
                None => return Err(EngineError::NotFound { entity: "jurisdiction", key: code.to_string() }),
            },
            None => None,
        };
        Ok(tree
            .iter()
            .filter(|node| kind.is_none_or(|kind| node.kind == kind))
            .filter(|node| {
                within.is_none_or(|(kind, code)| tree.chain_of(&node.code).is_some_and(|c| c.get(kind) == Some(code)))
            })
            .map(|node| Placed { node: node.clone(), shape: atlas.shape(&node.code).cloned() })
            .collect())
    }

    /// Where city-wide records lie (the code tables; a search over every account): only a
    /// scope bound to the whole city covers it, so a district's administrator cannot change
    /// what every district uses, nor learn what lies outside their district.
    pub(crate) fn city_chain(&self) -> Chain {
        self.jurisdictions.read().expect("jurisdictions lock").city_chain()
    }

    /// The chain of a node (itself and its ancestors).
    pub fn chain_of(&self, code: &str) -> Option<Chain> {
        self.jurisdictions.read().expect("jurisdictions lock").chain_of(code)
    }

    /// The ground of a node: everything at or below it.
    pub fn scope(&self, code: &str) -> Result<Scope, EngineError> {
        self.scope_of(code).map_err(|_| EngineError::NotFound { entity: "jurisdiction", key: code.to_string() })
    }

    pub(crate) fn scope_of(&self, code: &str) -> Result<Scope, JurisdictionError> {
        self.jurisdictions.read().expect("jurisdictions lock").scope_of(code)
    }

    /// One node (no authorisation: for naming nodes a caller was already shown).
    pub fn jurisdiction(&self, code: &str) -> Option<Jurisdiction> {
        self.jurisdictions.read().expect("jurisdictions lock").get(code).cloned()
    }

    /// The current atlas (a snapshot: an import swaps in a new one).
    pub fn atlas(&self) -> Arc<Atlas> {
        self.atlas.read().expect("atlas lock").clone()
    }

    /// Where `point` is, for use cases that locate their records (no authorisation: the
    /// caller's command was authorised). `None` outside the city.
    pub fn place(&self, point: LatLon) -> Option<Location> {
        let chain = self.atlas().locate(point)?;
        let resolution = self.config.h3_resolution;
        let h3_cell = point.h3_cell(resolution)?;
        Some(Location { point, chain, h3_cell, h3_resolution: resolution })
    }

    /// The lookup a user asks for: [`EngineError::OutsideCity`] when no district holds it.
    pub async fn locate(&self, caller: &Caller, point: LatLon) -> Result<Location, EngineError> {
        self.authorize(caller, Action::ReadJurisdictions, None, "jurisdiction.lookup", None).await?;
        self.place(point).ok_or(EngineError::OutsideCity { point })
    }
}

impl Engine {
    /// Adds nodes to the tree, all or none. Each node's parent must lie in the caller's
    /// jurisdiction; the city itself, which has no parent, only the system can create.
    pub async fn import_jurisdictions(&self, caller: &Caller, nodes: Vec<Jurisdiction>) -> Result<usize, EngineError> {
        self.add_jurisdictions(caller, nodes.into_iter().map(|node| NodeWrite { node, shape: None }).collect()).await
    }

    /// Adds nodes with the shapes given, trusted as they are: for the city generator, whose
    /// partitions are tested, not for files (see [`Engine::import_boundaries`]).
    pub async fn add_jurisdictions(&self, caller: &Caller, nodes: Vec<NodeWrite>) -> Result<usize, EngineError> {
        let _serial = self.admin_writes.lock().await;
        // Check the whole batch against the tree as it would be after it.
        let mut tree = self.jurisdictions.read().expect("jurisdictions lock").clone();
        for write in &nodes {
            tree.check_insert(&write.node)?;
            tree.insert(write.node.clone());
        }
        self.authorize_tree_change(caller, &tree, &nodes).await?;
        let entry =
            caller.entry(self.now(), "jurisdiction.import", Outcome::Allowed).detail(format!("{} nodes", nodes.len()));
        let added = Event::JurisdictionsAdded(nodes.iter().map(|w| w.node.clone()).collect());
        let now = self.now();
        self.store.save_jurisdictions(&nodes, &[], now, Audited::new(entry, Outbox::new(now, [&added]))).await?;
        let count = nodes.len();
        // The tree and the shapes (which no event carries) are installed by the command; a
        // follower re-reads the shapes from the store.
        self.install(tree, &nodes);
        self.publish(now, added);
        Ok(count)
    }

    /// Imports a boundary file (GeoJSON) at one level: every feature checked (see
    /// [`crate::boundaries`]), then all of it stored, or nothing when any feature is
    /// refused ([`EngineError::Boundaries`] lists every fault).
    pub async fn import_boundaries(
        &self,
        caller: &Caller,
        file: &[u8],
        options: &BoundaryImport,
    ) -> Result<ImportSummary, EngineError> {
        // The role first, so a caller who may not import anything costs no parsing; each
        // node's place is checked once the file says where its nodes go.
        self.authorize(caller, Action::ManageJurisdictions, None, "jurisdiction.import", None).await?;
        let (features, mut faults) = boundaries::parse_features(file, options.crs).map_err(EngineError::Boundaries)?;
        let _serial = self.admin_writes.lock().await;
        let mut tree = self.jurisdictions.read().expect("jurisdictions lock").clone();
        let atlas = self.atlas();
        let plan = match boundaries::plan_import(&tree, atlas.shapes(), features, options) {
            Ok(plan) if faults.is_empty() => plan,
            Ok(_) => return Err(EngineError::Boundaries(faults)),
            Err(more) => {
                faults.extend(more);
                boundaries::sort_faults(&mut faults);
                return Err(EngineError::Boundaries(faults));
            }
        };
        for write in &plan.added {
            tree.check_insert(&write.node)?;
            tree.insert(write.node.clone());
        }
        let touched: Vec<NodeWrite> = plan.added.iter().chain(&plan.changed).cloned().collect();
        self.authorize_tree_change(caller, &tree, &touched).await?;
        let summary = ImportSummary {
            level: options.level,
            added: plan.added.len(),
            updated: plan.changed.len(),
            vertices: touched.iter().filter_map(|w| w.shape.as_ref()).map(Area::vertex_count).sum(),
        };
        let entry = caller.entry(self.now(), "jurisdiction.import", Outcome::Allowed).detail(format!(
            "{} boundaries ({}): {} added, {} updated",
            options.level,
            options.crs.as_str(),
            summary.added,
            summary.updated
        ));
        let at = self.now();
        let nodes = |writes: &[NodeWrite]| writes.iter().map(|w| w.node.clone()).collect::<Vec<_>>();
        let mut events = Vec::new();
        if !plan.added.is_empty() {
            events.push(Event::JurisdictionsAdded(nodes(&plan.added)));
        }
        if !plan.changed.is_empty() {
            events.push(Event::JurisdictionsChanged(nodes(&plan.changed)));
        }
        let audited = Audited::new(entry, Outbox::new(at, &events));
        self.store.save_jurisdictions(&plan.added, &plan.changed, at, audited).await?;
        for write in &plan.changed {
            tree.rename(&write.node);
        }
        self.install(tree, &touched);
        for event in events {
            self.publish(at, event);
        }
        Ok(summary)
    }

    /// Every touched node's parent must lie in the caller's jurisdiction (a node itself,
    /// for one that is replaced); the city, which has no parent, only the system may touch.
    async fn authorize_tree_change(
        &self,
        caller: &Caller,
        tree: &JurisdictionTree,
        nodes: &[NodeWrite],
    ) -> Result<(), EngineError> {
        for write in nodes {
            let place = match &write.node.parent {
                Some(parent) => tree.chain_of(parent).unwrap_or_default(),
                None => Chain::default(),
            };
            self.authorize(
                caller,
                Action::ManageJurisdictions,
                Some(&place),
                "jurisdiction.import",
                Some(("jurisdiction", &write.node.code)),
            )
            .await?;
        }
        Ok(())
    }

    /// Makes a stored change live: the new tree, and an atlas with the new shapes.
    fn install(&self, tree: JurisdictionTree, writes: &[NodeWrite]) {
        let mut shapes = self.atlas().shapes().clone();
        for write in writes {
            if let Some(shape) = &write.shape {
                shapes.insert(write.node.code.clone(), shape.clone());
            }
        }
        let atlas = Atlas::new(&tree, shapes);
        *self.jurisdictions.write().expect("jurisdictions lock") = tree;
        *self.atlas.write().expect("atlas lock") = Arc::new(atlas);
    }
}

#[cfg(test)]
mod tests;
