//! The registry on PostgreSQL. Every record is one statement, so an import can pipeline a
//! batch of them on one connection inside its transaction.

use fangkong_core::registry::{Building, Day, HousingUnit, Permit, Sighting, Tenancy, Visit, Workstation};
use futures_util::future::join_all;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::audit::append_in;
use crate::error::{is_postgres_reference_violation, is_postgres_unique_violation};
use crate::outbox::Audited;
use crate::registry::{
    BUILDING_COLUMNS, BlindIndex, Communities, ImportCounts, ImportFeed, LANDLORD_COLUMNS, Occupancy, PERMIT_COLUMNS,
    PropertyCard, RESIDENT_COLUMNS, RegistryChange, RegistryRecord, ResidentRow, SIGHTING_COLUMNS, SealedLandlord,
    SealedResident, UNIT_COLUMNS, VISIT_COLUMNS, building_kind, landlord_kind, permit_kind, unit_use, visit_outcome,
};
use crate::{StoreError, wall_clock_millis};

/// Records sent to the server before waiting for their answers.
const PIPELINE: usize = 512;

fn resident_row(r: &Row) -> ResidentRow {
    ResidentRow {
        code: r.get(0),
        document: r.get(1),
        sealed: r.get(2),
        id_index: r.get(3),
        phone_index: r.get(4),
        name: r.get(5),
        sex: r.get(6),
        birth: r.get(7),
        origin_province: r.get(8),
        origin_city: r.get(9),
        employer: r.get(10),
        unit: r.get(11),
        grid: r.get(12),
        community: r.get(13),
    }
}

fn building(r: &Row) -> Result<Building, StoreError> {
    Ok(Building {
        code: r.get(0),
        address: r.get(1),
        grid: r.get(2),
        community: r.get(3),
        lon: r.get(4),
        lat: r.get(5),
        kind: building_kind(r.get(6))?,
        floors: count(r.get(7)),
    })
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn unit(r: &Row) -> Result<HousingUnit, StoreError> {
    Ok(HousingUnit {
        code: r.get(0),
        building: r.get(1),
        floor: i32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        area_m2: r.get(3),
        rooms: count(r.get(4)),
        usage: unit_use(r.get(5))?,
        rent_yuan: r.get::<_, Option<i64>>(6).map(count),
        rental: r.get(7),
        landlord: r.get(8),
        community: r.get(9),
    })
}

fn landlord(r: &Row) -> Result<SealedLandlord, StoreError> {
    Ok(SealedLandlord {
        code: r.get(0),
        kind: landlord_kind(r.get(1))?,
        name: r.get(2),
        contact_sealed: r.get(3),
        safety_person: r.get(4),
        pledge_signed: r.get(5),
        pledge_expires: r.get(6),
        community: r.get(7),
    })
}

fn permit(r: &Row) -> Result<Permit, StoreError> {
    Ok(Permit {
        resident: r.get(0),
        kind: permit_kind(r.get(1))?,
        issued: r.get(2),
        expires: r.get(3),
        endorsed: r.get(4),
        community: r.get(5),
    })
}

fn visit(r: &Row) -> Result<Visit, StoreError> {
    Ok(Visit {
        id: r.get(0),
        unit: r.get(1),
        community: r.get(2),
        day: r.get(3),
        by: r.get(4),
        outcome: visit_outcome(r.get(5))?,
        occupants: r.get::<_, Option<i64>>(6).map(count),
        note: r.get(7),
    })
}

fn sighting(r: &Row) -> Sighting {
    Sighting {
        id: r.get(0),
        resident: r.get(1),
        unit: r.get(2),
        community: r.get(3),
        day: r.get(4),
        by: r.get(5),
        note: r.get(6),
    }
}

/// `$1` is the communities array (NULL for all).
const IN_COMMUNITIES: &str = "($1::text[] IS NULL OR community = ANY($1))";

/// One record as one statement with its parameters.
fn statement(record: &RegistryRecord, now: i64) -> (&'static str, Vec<Box<dyn ToSql + Sync + Send>>) {
    fn b<T: ToSql + Sync + Send + 'static>(value: T) -> Box<dyn ToSql + Sync + Send> {
        Box::new(value)
    }
    match record {
        RegistryRecord::Workstation(w) => (
            "INSERT INTO registry_workstations (code, community, name, address, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (code) DO UPDATE SET community = excluded.community, name = excluded.name,
                 address = excluded.address, updated_at = excluded.updated_at",
            vec![b(w.code.clone()), b(w.community.clone()), b(w.name.clone()), b(w.address.clone()), b(now)],
        ),
        RegistryRecord::Building(x) => (
            "INSERT INTO registry_buildings (code, address, grid, community, lon, lat, kind, floors, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (code) DO UPDATE SET address = excluded.address, grid = excluded.grid,
                 community = excluded.community, lon = excluded.lon, lat = excluded.lat, kind = excluded.kind,
                 floors = excluded.floors, updated_at = excluded.updated_at",
            vec![
                b(x.code.clone()),
                b(x.address.clone()),
                b(x.grid.clone()),
                b(x.community.clone()),
                b(x.lon),
                b(x.lat),
                b(x.kind.as_str()),
                b(i64::from(x.floors)),
                b(now),
            ],
        ),
        RegistryRecord::Unit(u) => (
            "INSERT INTO registry_units (code, building, floor, area_m2, rooms, usage, rent_yuan, rental, landlord,
                 community, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (code) DO UPDATE SET building = excluded.building, floor = excluded.floor,
                 area_m2 = excluded.area_m2, rooms = excluded.rooms, usage = excluded.usage,
                 rent_yuan = excluded.rent_yuan, rental = excluded.rental, landlord = excluded.landlord,
                 community = excluded.community, updated_at = excluded.updated_at",
            vec![
                b(u.code.clone()),
                b(u.building.clone()),
                b(i64::from(u.floor)),
                b(u.area_m2),
                b(i64::from(u.rooms)),
                b(u.usage.as_str()),
                b(u.rent_yuan.map(i64::from)),
                b(u.rental),
                b(u.landlord.clone()),
                b(u.community.clone()),
                b(now),
            ],
        ),
        RegistryRecord::Landlord(l) => (
            "INSERT INTO registry_landlords (code, kind, name, contact_sealed, safety_person, pledge_signed,
                 pledge_expires, community, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                 contact_sealed = excluded.contact_sealed, safety_person = excluded.safety_person,
                 pledge_signed = excluded.pledge_signed, pledge_expires = excluded.pledge_expires,
                 community = excluded.community, updated_at = excluded.updated_at",
            vec![
                b(l.code.clone()),
                b(l.kind.as_str()),
                b(l.name.clone()),
                b(l.contact_sealed.clone()),
                b(l.safety_person.clone()),
                b(l.pledge_signed),
                b(l.pledge_expires),
                b(l.community.clone()),
                b(now),
            ],
        ),
        RegistryRecord::Resident(r) => (
            "INSERT INTO registry_residents (code, document, sealed, id_index, phone_index, name, sex, birth,
                 origin_province, origin_city, employer, unit, grid, community, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (code) DO UPDATE SET document = excluded.document, sealed = excluded.sealed,
                 id_index = excluded.id_index, phone_index = excluded.phone_index, name = excluded.name,
                 sex = excluded.sex, birth = excluded.birth, origin_province = excluded.origin_province,
                 origin_city = excluded.origin_city, employer = excluded.employer, unit = excluded.unit,
                 grid = excluded.grid, community = excluded.community, updated_at = excluded.updated_at",
            vec![
                b(r.code.clone()),
                b(r.document.as_str()),
                b(r.sealed.clone()),
                b(r.id_index.to_vec()),
                b(r.phone_index.map(|i| i.to_vec())),
                b(r.name.clone()),
                b(r.sex.as_str()),
                b(r.birth),
                b(r.origin_province.clone()),
                b(r.origin_city.clone()),
                b(r.employer.clone()),
                b(r.unit.clone()),
                b(r.grid.clone()),
                b(r.community.clone()),
                b(now),
            ],
        ),
        RegistryRecord::Tenancy(t) => (
            // Members that are no longer listed go; listed ones are added (disjoint rows, so
            // the two changes of one statement cannot collide).
            "WITH t AS (
                 INSERT INTO registry_tenancies (code, unit, landlord, lessee, move_in, move_out, community, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (code) DO UPDATE SET unit = excluded.unit, landlord = excluded.landlord,
                     lessee = excluded.lessee, move_in = excluded.move_in, move_out = excluded.move_out,
                     community = excluded.community, updated_at = excluded.updated_at
                 RETURNING code),
             gone AS (DELETE FROM registry_tenancy_members WHERE tenancy = $1 AND resident <> ALL($9::text[]))
             INSERT INTO registry_tenancy_members (tenancy, resident)
             SELECT (SELECT code FROM t), m FROM unnest($9::text[]) AS m ON CONFLICT DO NOTHING",
            vec![
                b(t.code.clone()),
                b(t.unit.clone()),
                b(t.landlord.clone()),
                b(t.lessee.clone()),
                b(t.move_in),
                b(t.move_out),
                b(t.community.clone()),
                b(now),
                b(t.members.clone()),
            ],
        ),
        RegistryRecord::MoveOut { tenancy, day } => (
            "UPDATE registry_tenancies SET move_out = $2, updated_at = $3 WHERE code = $1",
            vec![b(tenancy.clone()), b(*day), b(now)],
        ),
        RegistryRecord::Permit(p) => (
            "INSERT INTO registry_permits (resident, kind, issued, expires, endorsed, community, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (resident) DO UPDATE SET kind = excluded.kind, issued = excluded.issued,
                 expires = excluded.expires, endorsed = excluded.endorsed, community = excluded.community,
                 updated_at = excluded.updated_at",
            vec![
                b(p.resident.clone()),
                b(p.kind.as_str()),
                b(p.issued),
                b(p.expires),
                b(p.endorsed),
                b(p.community.clone()),
                b(now),
            ],
        ),
        RegistryRecord::Visit(v) => (
            "INSERT INTO registry_visits (unit, community, day, by_user, outcome, occupants, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                b(v.unit.clone()),
                b(v.community.clone()),
                b(v.day),
                b(v.by.clone()),
                b(v.outcome.as_str()),
                b(v.occupants.map(i64::from)),
                b(v.note.clone()),
            ],
        ),
        RegistryRecord::Sighting(s) => (
            "INSERT INTO registry_sightings (resident, unit, community, day, by_user, note) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                b(s.resident.clone()),
                b(s.unit.clone()),
                b(s.community.clone()),
                b(s.day),
                b(s.by.clone()),
                b(s.note.clone()),
            ],
        ),
    }
}

async fn exists(client: &impl deadpool_postgres::GenericClient, table: &str, key: &str) -> Result<bool, StoreError> {
    let sql = format!("SELECT 1 FROM {table} WHERE code = $1");
    Ok(client.query_opt(&sql, &[&key]).await?.is_some())
}

/// After a refused reference (the transaction is aborted, so on a fresh connection):
/// which field names a record that is not on the registry.
async fn missing_reference(store: &PgStore, record: &RegistryRecord) -> Result<(&'static str, String), StoreError> {
    let client = store.client().await?;
    let c = &client;
    let missing =
        |field: &'static str, what: &str, code: &str| (field, format!("{what} {code} is not on the registry"));
    Ok(match record {
        RegistryRecord::Unit(u) if !exists(c, "registry_buildings", &u.building).await? => {
            missing("building", "building", &u.building)
        }
        RegistryRecord::Unit(u) => missing("landlord", "landlord", u.landlord.as_deref().unwrap_or("")),
        RegistryRecord::Tenancy(t) => {
            if !exists(c, "registry_units", &t.unit).await? {
                missing("unit", "unit", &t.unit)
            } else if let Some(l) = t.landlord.as_deref()
                && !exists(c, "registry_landlords", l).await?
            {
                missing("landlord", "landlord", l)
            } else {
                let mut absent = None;
                for m in &t.members {
                    if !exists(c, "registry_residents", m).await? {
                        absent = Some(m);
                        break;
                    }
                }
                match absent {
                    Some(m) => missing(if *m == t.lessee { "lessee" } else { "members" }, "resident", m),
                    None => ("move_out", "is before move-in".into()),
                }
            }
        }
        RegistryRecord::MoveOut { tenancy, .. } if !exists(c, "registry_tenancies", tenancy).await? => {
            missing("tenancy", "tenancy", tenancy)
        }
        RegistryRecord::MoveOut { .. } => ("move_out", "is before move-in".into()),
        RegistryRecord::Permit(p) if exists(c, "registry_residents", &p.resident).await? => {
            ("expires", "must be after the issue date".into())
        }
        RegistryRecord::Permit(p) => missing("resident", "resident", &p.resident),
        RegistryRecord::Visit(v) => missing("unit", "unit", &v.unit),
        RegistryRecord::Sighting(s) if !exists(c, "registry_residents", &s.resident).await? => {
            missing("resident", "resident", &s.resident)
        }
        RegistryRecord::Sighting(s) => missing("unit", "unit", &s.unit),
        RegistryRecord::Resident(r) => missing("unit", "unit", r.unit.as_deref().unwrap_or("")),
        other => (other.entity(), "breaks a rule of the registry".into()),
    })
}

/// What a refused record becomes: the field and the error.
async fn refusal(store: &PgStore, record: &RegistryRecord, error: tokio_postgres::Error) -> (&'static str, StoreError) {
    if is_postgres_unique_violation(&error) {
        let (field, message) = match record {
            RegistryRecord::Resident(_) => ("id_number", "is registered to another resident"),
            _ => ("code", "is taken"),
        };
        (field, StoreError::Conflict { entity: record.entity(), key: message.into() })
    } else if is_postgres_reference_violation(&error) {
        match missing_reference(store, record).await {
            Ok((field, message)) => (field, StoreError::Rejected { row: 0, field, message }),
            Err(error) => (record.entity(), error),
        }
    } else {
        (record.entity(), error.into())
    }
}

async fn insert_change(
    client: &impl deadpool_postgres::GenericClient,
    change: &RegistryChange,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO registry_changes (at, entity, code, community, change, actor) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&change.at.as_millis(), &change.entity, &change.code, &change.community, &change.change, &change.actor],
        )
        .await?;
    Ok(())
}

fn params(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
}

impl PgStore {
    /// Applies `records` in order, pipelined; the first refusal (by position) with its
    /// index.
    ///
    /// Every statement is prepared before any is executed: a record whose statement was
    /// still being prepared used to be executed after later records whose statements were
    /// cached, so a unit and a resident living in it, sent in that order, reached the server
    /// the other way round and the import failed.
    async fn apply_all(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        records: &[&RegistryRecord],
        now: i64,
    ) -> Result<(), (usize, &'static str, StoreError)> {
        let statements: Vec<_> = records.iter().map(|r| statement(r, now)).collect();
        let mut prepared: Vec<(&str, tokio_postgres::Statement)> = Vec::new();
        for (at, (sql, _)) in statements.iter().enumerate() {
            if !prepared.iter().any(|(known, _)| known == sql) {
                let statement = tx.prepare_cached(sql).await.map_err(|e| (at, records[at].entity(), e.into()))?;
                prepared.push((sql, statement));
            }
        }
        let results = join_all(statements.iter().map(|(sql, values)| {
            let statement = &prepared.iter().find(|(known, _)| known == sql).expect("prepared above").1;
            async move { tx.execute(statement, &params(values)).await }
        }))
        .await;
        for (at, result) in results.into_iter().enumerate() {
            if let (Ok(0), RegistryRecord::MoveOut { tenancy, .. }) = (&result, records[at]) {
                let message = format!("tenancy {tenancy} is not on the registry");
                return Err((at, "tenancy", StoreError::Rejected { row: 0, field: "tenancy", message }));
            }
            if let Err(error) = result {
                // Later statements fail only because the transaction is aborted.
                let (field, error) = refusal(self, records[at], error).await;
                return Err((at, field, error));
            }
        }
        Ok(())
    }

    pub async fn write_registry(
        &self,
        key: [u8; 32],
        records: Vec<RegistryRecord>,
        changes: Vec<RegistryChange>,
        entry: &Audited,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = wall_clock_millis();
        for record in &records {
            self.apply_all(&tx, &[record], now).await.map_err(|(_, _, error)| error)?;
        }
        for change in &changes {
            insert_change(&tx, change).await?;
        }
        append_in(&tx, &key, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn import_registry(
        &self,
        key: [u8; 32],
        mut feed: tokio::sync::mpsc::Receiver<ImportFeed>,
        change: RegistryChange,
        entry: &Audited,
    ) -> Result<ImportCounts, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = wall_clock_millis();
        let mut counts = ImportCounts::default();
        while let Some(message) = feed.recv().await {
            match message {
                ImportFeed::Batch(records) => {
                    for chunk in records.chunks(PIPELINE) {
                        let refs: Vec<&RegistryRecord> = chunk.iter().map(|(_, r)| r).collect();
                        self.apply_all(&tx, &refs, now).await.map_err(|(at, field, error)| {
                            let row = chunk[at].0;
                            match error {
                                StoreError::Rejected { message, .. } => StoreError::Rejected { row, field, message },
                                StoreError::Conflict { key, .. } => StoreError::Rejected { row, field, message: key },
                                other => other,
                            }
                        })?;
                    }
                    counts.rows += records.len() as u64;
                }
                ImportFeed::Abort(reason) => {
                    return Err(StoreError::Rejected { row: 0, field: "file", message: reason });
                }
            }
        }
        let change = RegistryChange { change: format!("{}:{}", change.change, counts.rows), ..change };
        insert_change(&tx, &change).await?;
        let mut entry = entry.clone();
        entry.audit.detail = Some(format!("{} rows", counts.rows));
        // The import's events are made with the number of rows it stored.
        append_in(&tx, &key, &entry.with_ids(&[counts.rows as i64])).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn residents_query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<SealedResident>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, params).await?;
        rows.iter().map(|r| resident_row(r).decode()).collect()
    }

    pub async fn resident_by_id_index(&self, index: BlindIndex) -> Result<Option<SealedResident>, StoreError> {
        let sql = format!("SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE id_index = $1");
        Ok(self.residents_query(&sql, &[&&index[..]]).await?.pop())
    }

    pub async fn resident(&self, code: String) -> Result<Option<SealedResident>, StoreError> {
        let sql = format!("SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE code = $1");
        Ok(self.residents_query(&sql, &[&code]).await?.pop())
    }

    pub async fn residents_by_phone_index(
        &self,
        index: BlindIndex,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE phone_index = $2 AND {IN_COMMUNITIES}
             ORDER BY community, name, code LIMIT $3"
        );
        self.residents_query(&sql, &[&communities, &&index[..], &i64::from(limit)]).await
    }

    pub async fn residents_by_name(
        &self,
        name: String,
        communities: Vec<String>,
        limit: u32,
    ) -> Result<Vec<SealedResident>, StoreError> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE name = $2 AND community = ANY($1)
             ORDER BY community, name, code LIMIT $3"
        );
        self.residents_query(&sql, &[&communities, &name, &i64::from(limit)]).await
    }

    pub async fn residents_page(
        &self,
        communities: Communities,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SealedResident)>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS}, id FROM registry_residents WHERE id > $2 AND {IN_COMMUNITIES}
             ORDER BY id LIMIT $3"
        );
        let rows = client.query(&sql, &[&communities, &after, &i64::from(limit)]).await?;
        rows.iter().map(|r| Ok((r.get::<_, i64>(14), resident_row(r).decode()?))).collect()
    }

    pub async fn search_buildings(
        &self,
        text: String,
        communities: Communities,
        limit: u32,
    ) -> Result<Vec<Building>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {BUILDING_COLUMNS} FROM registry_buildings
             WHERE (code = $2 OR strpos(address, $2) > 0) AND {IN_COMMUNITIES} ORDER BY code LIMIT $3"
        );
        client.query(&sql, &[&communities, &text, &i64::from(limit)]).await?.iter().map(building).collect()
    }

    pub async fn building(&self, code: String) -> Result<Option<Building>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {BUILDING_COLUMNS} FROM registry_buildings WHERE code = $1");
        client.query_opt(&sql, &[&code]).await?.as_ref().map(building).transpose()
    }

    pub async fn housing_unit(&self, code: String) -> Result<Option<HousingUnit>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {UNIT_COLUMNS} FROM registry_units WHERE code = $1");
        client.query_opt(&sql, &[&code]).await?.as_ref().map(unit).transpose()
    }

    pub async fn landlord(&self, code: String) -> Result<Option<SealedLandlord>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {LANDLORD_COLUMNS} FROM registry_landlords WHERE code = $1");
        client.query_opt(&sql, &[&code]).await?.as_ref().map(landlord).transpose()
    }

    async fn tenancies(&self, condition: &str, value: &str) -> Result<Vec<Tenancy>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT code, unit, landlord, lessee, move_in, move_out, community,
                 ARRAY(SELECT resident FROM registry_tenancy_members m WHERE m.tenancy = t.code
                       ORDER BY m.resident <> t.lessee, m.resident)
             FROM registry_tenancies t WHERE {condition} ORDER BY move_out IS NOT NULL, move_in DESC, code"
        );
        Ok(client
            .query(&sql, &[&value])
            .await?
            .iter()
            .map(|r| Tenancy {
                code: r.get(0),
                unit: r.get(1),
                landlord: r.get(2),
                lessee: r.get(3),
                move_in: r.get(4),
                move_out: r.get(5),
                community: r.get(6),
                members: r.get(7),
            })
            .collect())
    }

    pub async fn tenancy(&self, code: String) -> Result<Option<Tenancy>, StoreError> {
        Ok(self.tenancies("code = $1", &code).await?.pop())
    }

    pub async fn tenancies_of(&self, resident: String) -> Result<Vec<Tenancy>, StoreError> {
        self.tenancies("code IN (SELECT tenancy FROM registry_tenancy_members WHERE resident = $1)", &resident).await
    }

    pub async fn permit(&self, resident: String) -> Result<Option<Permit>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE resident = $1");
        client.query_opt(&sql, &[&resident]).await?.as_ref().map(permit).transpose()
    }

    pub async fn workstations(&self, communities: Communities) -> Result<Vec<Workstation>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT code, community, name, address FROM registry_workstations WHERE {IN_COMMUNITIES} ORDER BY code"
        );
        Ok(client
            .query(&sql, &[&communities])
            .await?
            .iter()
            .map(|r| Workstation { code: r.get(0), community: r.get(1), name: r.get(2), address: r.get(3) })
            .collect())
    }

    pub async fn workstation(&self, code: String) -> Result<Option<Workstation>, StoreError> {
        let client = self.client().await?;
        let sql = "SELECT code, community, name, address FROM registry_workstations WHERE code = $1";
        Ok(client.query_opt(sql, &[&code]).await?.map(|r| Workstation {
            code: r.get(0),
            community: r.get(1),
            name: r.get(2),
            address: r.get(3),
        }))
    }

    pub async fn property_card(&self, code: String) -> Result<PropertyCard, StoreError> {
        let Some(found) = self.building(code.clone()).await? else {
            return Ok(PropertyCard::default());
        };
        let client = self.client().await?;
        let units_of = "SELECT code FROM registry_units WHERE building = $1";
        let members = format!(
            "SELECT resident FROM registry_tenancy_members WHERE tenancy IN
             (SELECT code FROM registry_tenancies WHERE unit IN ({units_of}))"
        );
        let units = client
            .query(&format!("SELECT {UNIT_COLUMNS} FROM registry_units WHERE building = $1 ORDER BY code"), &[&code])
            .await?
            .iter()
            .map(unit)
            .collect::<Result<Vec<_>, _>>()?;
        let landlords = client
            .query(
                &format!(
                    "SELECT {LANDLORD_COLUMNS} FROM registry_landlords WHERE code IN
                     (SELECT landlord FROM registry_units WHERE building = $1) ORDER BY code"
                ),
                &[&code],
            )
            .await?
            .iter()
            .map(landlord)
            .collect::<Result<Vec<_>, _>>()?;
        let residents = client
            .query(
                &format!(
                    "SELECT {RESIDENT_COLUMNS} FROM registry_residents WHERE code IN ({members})
                     OR unit IN ({units_of}) ORDER BY code"
                ),
                &[&code],
            )
            .await?
            .iter()
            .map(|r| resident_row(r).decode())
            .collect::<Result<Vec<_>, _>>()?;
        let permits = client
            .query(
                &format!(
                    "SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE resident IN ({members})
                     OR resident IN (SELECT code FROM registry_residents WHERE unit IN ({units_of})) ORDER BY resident"
                ),
                &[&code],
            )
            .await?
            .iter()
            .map(permit)
            .collect::<Result<Vec<_>, _>>()?;
        let visits = client
            .query(
                &format!(
                    "SELECT {VISIT_COLUMNS} FROM registry_visits WHERE unit IN ({units_of})
                     ORDER BY day DESC, id DESC LIMIT 200"
                ),
                &[&code],
            )
            .await?
            .iter()
            .map(visit)
            .collect::<Result<Vec<_>, _>>()?;
        drop(client);
        let tenancies = self.tenancies(&format!("unit IN ({units_of})"), &code).await?;
        Ok(PropertyCard { building: Some(found), units, landlords, tenancies, residents, permits, visits })
    }

    pub async fn permits_due(
        &self,
        communities: Communities,
        before: Day,
        limit: u32,
    ) -> Result<Vec<Permit>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {PERMIT_COLUMNS} FROM registry_permits WHERE expires <= $2 AND {IN_COMMUNITIES}
             ORDER BY expires, resident LIMIT $3"
        );
        client.query(&sql, &[&communities, &before, &i64::from(limit)]).await?.iter().map(permit).collect()
    }

    pub async fn occupancies(&self, communities: Communities, limit: u32) -> Result<Vec<Occupancy>, StoreError> {
        let client = self.client().await?;
        let sql = "SELECT u.code, u.community, u.area_m2, u.rooms, count(DISTINCT m.resident)
             FROM registry_units u
             JOIN registry_tenancies t ON t.unit = u.code AND t.move_out IS NULL
             JOIN registry_tenancy_members m ON m.tenancy = t.code
             WHERE ($1::text[] IS NULL OR u.community = ANY($1))
             GROUP BY u.code ORDER BY u.code LIMIT $2";
        Ok(client
            .query(sql, &[&communities, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| Occupancy {
                unit: r.get(0),
                community: r.get(1),
                area_m2: r.get(2),
                rooms: count(r.get(3)),
                persons: count(r.get(4)),
            })
            .collect())
    }

    pub async fn unmatched_sightings(&self, communities: Communities, limit: u32) -> Result<Vec<Sighting>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {SIGHTING_COLUMNS} FROM registry_sightings s WHERE {IN_COMMUNITIES} AND NOT EXISTS
                 (SELECT 1 FROM registry_tenancy_members m JOIN registry_tenancies t ON t.code = m.tenancy
                  WHERE m.resident = s.resident AND t.unit = s.unit AND t.move_out IS NULL)
             ORDER BY day DESC, id DESC LIMIT $2"
        );
        Ok(client.query(&sql, &[&communities, &i64::from(limit)]).await?.iter().map(sighting).collect())
    }

    pub async fn lapsed_pledges(
        &self,
        communities: Communities,
        today: Day,
        limit: u32,
    ) -> Result<Vec<SealedLandlord>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {LANDLORD_COLUMNS} FROM registry_landlords
             WHERE (pledge_expires IS NULL OR pledge_expires < $2) AND {IN_COMMUNITIES}
             ORDER BY pledge_expires NULLS FIRST, code LIMIT $3"
        );
        client.query(&sql, &[&communities, &today, &i64::from(limit)]).await?.iter().map(landlord).collect()
    }

    pub async fn registry_changes(&self, after: i64, limit: u32) -> Result<Vec<RegistryChange>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT seq, at, entity, code, community, change, actor FROM registry_changes
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| RegistryChange {
                seq: r.get(0),
                at: fangkong_core::time::Timestamp::from_millis(r.get(1)),
                entity: r.get(2),
                code: r.get(3),
                community: r.get(4),
                change: r.get(5),
                actor: r.get(6),
            })
            .collect())
    }

    pub async fn count_residents(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let count: i64 = client.query_one("SELECT count(*) FROM registry_residents", &[]).await?.get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
