//! Built-in defaults that a new database starts with and administrators then own.
//!
//! Each default set is seeded once per database: a `meta` key records that it was, so a
//! code an administrator deliberately retired or changed is never put back by a restart.

use fangkong_core::codes::{CodeEntry, CodeKind, CodeTable};
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;
use fangkong_store::{Audited, Outbox, StoreError};

use crate::{Engine, EngineError};

const DEFAULT_CODES: &str = include_str!("../defaults/codes.csv");
const CODES_SEEDED_KEY: &str = "seeded.codes";

/// Parses the built-in code table (`kind,code,name_zh,name_en,priority`, `#` comments).
pub(crate) fn default_codes(at: Timestamp) -> Result<Vec<CodeEntry>, EngineError> {
    let mut entries = Vec::new();
    for (index, line) in DEFAULT_CODES.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let row = index + 1;
        let fields: Vec<&str> = line.split(',').collect();
        let [kind, code, name_zh, name_en, priority] = fields[..] else {
            return Err(EngineError::Defaults(format!(
                "codes.csv line {row}: expected 5 fields, got {}",
                fields.len()
            )));
        };
        let kind = CodeKind::parse(kind)
            .ok_or_else(|| EngineError::Defaults(format!("codes.csv line {row}: kind {kind:?}")))?;
        let priority = match priority {
            "" => None,
            p => Some(p.parse().map_err(|_| EngineError::Defaults(format!("codes.csv line {row}: priority {p:?}")))?),
        };
        entries.push(CodeEntry {
            kind,
            code: code.to_string(),
            name_zh: name_zh.to_string(),
            name_en: name_en.to_string(),
            priority,
            active: true,
            updated_at: at,
        });
    }
    // The whole set must be a valid table on its own.
    CodeTable::from_entries(entries.clone()).map_err(|e| EngineError::Defaults(format!("codes.csv: {e}")))?;
    Ok(entries)
}

impl Engine {
    pub(crate) async fn seed_defaults(&self) -> Result<(), EngineError> {
        if self.store.meta_get(CODES_SEEDED_KEY).await?.is_some() {
            return Ok(());
        }
        let at = self.clock.now();
        let entries = default_codes(at)?;
        let audit = crate::Caller::system("defaults")
            .entry(at, "code.seed", fangkong_core::audit::Outcome::Allowed)
            .detail(format!("{} built-in codes", entries.len()));
        let events: Vec<Event> = entries.iter().cloned().map(Event::CodeCreated).collect();
        match self.store.insert_codes(&entries, Some(Audited::new(audit, Outbox::new(at, &events)))).await {
            Ok(()) => {
                for event in events {
                    self.publish(at, event);
                }
            }
            // Another node seeded first, or a seed was stored but its marker was not: the
            // codes are there either way.
            Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.store.meta_set(CODES_SEEDED_KEY, &at.as_millis().to_string()).await?;
        Ok(())
    }
}
