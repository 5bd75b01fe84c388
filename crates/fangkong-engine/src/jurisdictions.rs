//! The jurisdiction tree: loaded into memory at start, extended by imports.

use fangkong_core::audit::Outcome;
use fangkong_core::auth::Action;
use fangkong_core::jurisdiction::{Chain, Jurisdiction, JurisdictionError, JurisdictionTree, Scope};

use crate::{Caller, Engine, EngineError};

impl Engine {
    pub(crate) async fn load_jurisdictions(&self) -> Result<(), EngineError> {
        let tree = JurisdictionTree::from_nodes(self.store.list_jurisdictions().await?)?;
        *self.jurisdictions.write().expect("jurisdictions lock") = tree;
        Ok(())
    }

    /// Every node, in code order.
    pub async fn jurisdictions(&self, caller: &Caller) -> Result<Vec<Jurisdiction>, EngineError> {
        self.authorize(caller, Action::ReadJurisdictions, None, "jurisdiction.list", None).await?;
        Ok(self.jurisdictions.read().expect("jurisdictions lock").iter().cloned().collect())
    }

    /// The chain of a node (itself and its ancestors).
    pub fn chain_of(&self, code: &str) -> Option<Chain> {
        self.jurisdictions.read().expect("jurisdictions lock").chain_of(code)
    }

    pub(crate) fn scope_of(&self, code: &str) -> Result<Scope, JurisdictionError> {
        self.jurisdictions.read().expect("jurisdictions lock").scope_of(code)
    }

    pub(crate) fn jurisdiction(&self, code: &str) -> Option<Jurisdiction> {
        self.jurisdictions.read().expect("jurisdictions lock").get(code).cloned()
    }

    /// Adds nodes to the tree, all or none. Each node's parent must lie in the caller's
    /// jurisdiction; the city itself, which has no parent, only the system can create.
    pub async fn import_jurisdictions(&self, caller: &Caller, nodes: Vec<Jurisdiction>) -> Result<usize, EngineError> {
        let _serial = self.admin_writes.lock().await;
        // Check the whole batch against the tree as it would be after it.
        let mut tree = self.jurisdictions.read().expect("jurisdictions lock").clone();
        for node in &nodes {
            tree.check_insert(node)?;
            tree.insert(node.clone());
        }
        for node in &nodes {
            let place = match &node.parent {
                Some(parent) => tree.chain_of(parent).unwrap_or_default(),
                None => Chain::default(),
            };
            self.authorize(
                caller,
                Action::ManageJurisdictions,
                Some(&place),
                "jurisdiction.import",
                Some(("jurisdiction", &node.code)),
            )
            .await?;
        }
        let entry =
            caller.entry(self.now(), "jurisdiction.import", Outcome::Allowed).detail(format!("{} nodes", nodes.len()));
        self.store.insert_jurisdictions(&nodes, self.now(), &entry).await?;
        *self.jurisdictions.write().expect("jurisdictions lock") = tree;
        let count = nodes.len();
        self.publish(self.now(), fangkong_core::event::Event::JurisdictionsAdded(nodes));
        Ok(count)
    }
}
