//! Imports of residents, tenancies and properties from CSV or XLSX, all or nothing.
//!
//! A file is read as a stream on a blocking thread: each row is parsed, checked against the
//! registry's rules and the caller's jurisdiction, and sealed; good rows go to the store in
//! batches while the store applies them inside one transaction (the two run on different
//! cores). The first bad row stops the writing, but reading goes on so the report lists
//! every bad row (up to [`MAX_REPORTED`]) with its field and rule; then the transaction is
//! rolled back and the registry is as it was. A reference the store refuses (a unit or a
//! resident that is not registered, an identity number registered to someone else) fails
//! the import the same way, naming its row.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fangkong_core::audit::Outcome;
use fangkong_core::auth::{Action, Actor};
use fangkong_core::documents::DocumentKind;
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::{Chain, JurisdictionKind, JurisdictionTree};
use fangkong_core::registry::{
    Building, BuildingKind, Day, HousingUnit, LandlordKind, Permit, PermitKind, Sex, Tenancy, UnitUse, check_code,
    check_permit_dates, check_tenancy_dates, parse_date,
};
use fangkong_store::registry::{ImportFeed, RegistryChange, RegistryRecord};
use fangkong_store::{Audited, Outbox, StoreError};

use super::{NewLandlord, NewResident, check_building_fields, check_unit_fields, seal_landlord, seal_resident};
use crate::guard::{Record, stored_place};
use crate::person::Indexer;
use crate::{Caller, Engine, EngineError};

/// Bad rows listed in a report (the count covers all of them).
pub const MAX_REPORTED: usize = 1_000;
/// Records per batch sent to the store.
const BATCH: usize = 4_096;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    Residents,
    Tenancies,
    /// Buildings with their units (and the units' landlords), one unit per row.
    Properties,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Residents => "residents",
            ImportKind::Tenancies => "tenancies",
            ImportKind::Properties => "properties",
        }
    }

    pub fn parse(text: &str) -> Option<ImportKind> {
        [ImportKind::Residents, ImportKind::Tenancies, ImportKind::Properties].into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Xlsx,
}

impl ImportFormat {
    /// From a file name's extension.
    pub fn from_name(name: &str) -> Option<ImportFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(ImportFormat::Csv)
        } else if lower.ends_with(".xlsx") {
            Some(ImportFormat::Xlsx)
        } else {
            None
        }
    }
}

/// How far an import has read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportProgress {
    pub rows: u64,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
}

/// A bad row: its number in the file (the header is row 1), the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}, {}: {}", self.row, self.field, self.message)
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Records written (a properties row may write a building, a landlord and a unit).
    pub records: u64,
    /// Columns of the file that no field of this kind reads.
    pub ignored_columns: Vec<String>,
}

/// Column names a file may use for each field (English, then Chinese).
const ALIASES: &[(&str, &[&str])] = &[
    ("code", &["code", "id", "编号"]),
    ("name", &["name", "姓名"]),
    ("sex", &["sex", "性别"]),
    ("birth_date", &["birth_date", "出生日期"]),
    ("document", &["document", "document_type", "证件类型"]),
    ("id_number", &["id_number", "证件号码", "身份证号"]),
    ("phone", &["phone", "手机号码", "联系电话"]),
    ("origin_province", &["origin_province", "户籍省"]),
    ("origin_city", &["origin_city", "户籍市"]),
    ("employer", &["employer", "工作单位"]),
    ("unit", &["unit", "房屋编号"]),
    ("grid", &["grid", "网格"]),
    ("permit_kind", &["permit_kind", "证件种类"]),
    ("permit_issued", &["permit_issued", "发证日期"]),
    ("permit_expires", &["permit_expires", "有效期至"]),
    ("permit_endorsed", &["permit_endorsed", "签注日期"]),
    ("landlord", &["landlord", "出租人编号"]),
    ("lessee", &["lessee", "承租人"]),
    ("co_residents", &["co_residents", "residents", "同住人"]),
    ("move_in", &["move_in", "start", "入住日期"]),
    ("move_out", &["move_out", "搬离日期"]),
    ("building", &["building", "楼栋编号"]),
    ("address", &["address", "地址"]),
    ("lon", &["lon", "经度"]),
    ("lat", &["lat", "纬度"]),
    ("kind", &["kind", "building_kind", "楼栋类型"]),
    ("floors", &["floors", "层数"]),
    ("floor", &["floor", "楼层"]),
    ("area_m2", &["area_m2", "面积"]),
    ("rooms", &["rooms", "间数"]),
    ("usage", &["usage", "用途"]),
    ("rent_yuan", &["rent_yuan", "月租金"]),
    ("rental", &["rental", "是否出租"]),
    ("landlord_kind", &["landlord_kind", "出租人类型"]),
    ("landlord_name", &["landlord_name", "出租人"]),
    ("landlord_phone", &["landlord_phone", "出租人电话"]),
    ("safety_person", &["safety_person", "治安责任人"]),
    ("safety_phone", &["safety_phone", "责任人电话"]),
    ("pledge_signed", &["pledge_signed", "责任书签订日期"]),
    ("pledge_expires", &["pledge_expires", "责任书有效期至"]),
];

const FIELDS: &[(ImportKind, &[&str], &[&str])] = &[
    (
        ImportKind::Residents,
        &["code", "name", "id_number"],
        &[
            "sex",
            "birth_date",
            "document",
            "phone",
            "origin_province",
            "origin_city",
            "employer",
            "unit",
            "grid",
            "permit_kind",
            "permit_issued",
            "permit_expires",
            "permit_endorsed",
        ],
    ),
    (ImportKind::Tenancies, &["code", "unit", "move_in"], &["landlord", "lessee", "co_residents", "move_out"]),
    (
        ImportKind::Properties,
        &["building", "address", "grid", "lon", "lat", "unit"],
        &[
            "kind",
            "floors",
            "floor",
            "area_m2",
            "rooms",
            "usage",
            "rent_yuan",
            "rental",
            "landlord",
            "landlord_kind",
            "landlord_name",
            "landlord_phone",
            "safety_person",
            "safety_phone",
            "pledge_signed",
            "pledge_expires",
        ],
    ),
];

/// Which column holds each field.
struct Columns {
    at: HashMap<&'static str, usize, Fnv>,
}

/// FNV-1a for the handful of field names looked up for every cell of a file (SipHash's
/// resistance to chosen keys is not needed for our own constant names, and was a tenth of
/// the reading thread's time).
#[derive(Clone, Copy, Default)]
struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Columns {
    fn new(kind: ImportKind, header: &[String]) -> Result<(Columns, Vec<String>), ImportError> {
        let (_, required, optional) = FIELDS.iter().find(|(k, _, _)| *k == kind).expect("every kind has fields");
        let mut at = HashMap::with_hasher(Fnv);
        let mut ignored = Vec::new();
        for (i, name) in header.iter().enumerate() {
            let name = name.trim().trim_start_matches('\u{feff}');
            let field = ALIASES
                .iter()
                .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
                .map(|(f, _)| *f)
                .filter(|f| required.contains(f) || optional.contains(f));
            match field {
                Some(f) => {
                    at.insert(f, i);
                }
                None => ignored.push(name.to_string()),
            }
        }
        if let Some(missing) = required.iter().find(|f| !at.contains_key(*f)) {
            return Err(ImportError {
                row: 1,
                field: (*missing).to_string(),
                message: format!("the header has no {missing} column"),
            });
        }
        Ok((Columns { at }, ignored))
    }
}

/// A data row: its cells by field.
struct Row<'a> {
    columns: &'a Columns,
    record: &'a csv::StringRecord,
}

type RowResult<T> = Result<T, (&'static str, String)>;

impl Row<'_> {
    fn get(&self, field: &'static str) -> Option<&str> {
        self.columns.at.get(field).and_then(|&i| self.record.get(i)).map(str::trim).filter(|v| !v.is_empty())
    }

    fn text(&self, field: &'static str) -> RowResult<&str> {
        self.get(field).ok_or_else(|| (field, "required".into()))
    }

    fn owned(&self, field: &'static str) -> Option<String> {
        self.get(field).map(str::to_string)
    }

    fn date(&self, field: &'static str) -> RowResult<Option<Day>> {
        self.get(field)
            .map(|v| parse_date(v).ok_or_else(|| (field, format!("{v:?} is not a date (YYYY-MM-DD)"))))
            .transpose()
    }

    fn number<T: std::str::FromStr>(&self, field: &'static str) -> RowResult<Option<T>> {
        self.get(field).map(|v| v.parse::<T>().map_err(|_| (field, format!("{v:?} is not a number")))).transpose()
    }

    /// A word of a list; `words` names the list in the error (made only then).
    fn word<T>(
        &self,
        field: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        words: impl Fn() -> String,
    ) -> RowResult<Option<T>> {
        self.get(field).map(|v| parse(v).ok_or_else(|| (field, format!("{v:?} is not one of {}", words())))).transpose()
    }
}

fn sex_word(text: &str) -> Option<Sex> {
    match text {
        "M" | "m" | "男" | "male" => Some(Sex::Male),
        "F" | "f" | "女" | "female" => Some(Sex::Female),
        _ => None,
    }
}

fn document_word(text: &str) -> Option<DocumentKind> {
    match text {
        "身份证" | "居民身份证" => Some(DocumentKind::ResidentId),
        "护照" => Some(DocumentKind::ChinesePassport),
        _ => DocumentKind::parse(text),
    }
}

fn yes_no(text: &str) -> Option<bool> {
    match text {
        "1" | "yes" | "true" | "是" | "Y" | "y" => Some(true),
        "0" | "no" | "false" | "否" | "N" | "n" => Some(false),
        _ => None,
    }
}

/// What a reading thread needs from the engine, owned.
struct Context {
    kind: ImportKind,
    actor: Actor,
    tree: JurisdictionTree,
    personal_key: [u8; 32],
    indexer: Indexer,
    today: Day,
    places: HashMap<String, Option<(Chain, String)>>,
    seen_buildings: HashSet<String>,
    seen_landlords: HashSet<String>,
    /// Whether the caller's jurisdiction is the whole city: then every stored record is
    /// theirs and rows are not looked up one by one (the full-scale import stays a stream).
    city_wide: bool,
    /// For what a row refers to (a tenancy's unit and its community).
    store: Arc<fangkong_store::Store>,
    runtime: tokio::runtime::Handle,
}

impl Context {
    /// The community of a grid (or community) code the caller may write in.
    fn place(&mut self, field: &'static str, code: &str) -> RowResult<String> {
        if !self.places.contains_key(code) {
            let found = self.tree.chain_of(code).and_then(|chain| {
                let community = chain.get(JurisdictionKind::Community)?.to_string();
                Some((chain, community))
            });
            self.places.insert(code.to_string(), found);
        }
        match &self.places[code] {
            None => Err((field, format!("{code} is not a community or grid of the city"))),
            Some((chain, _)) if self.actor.check_in(Action::ManageRegistry, chain).is_err() => {
                Err((field, format!("{code} is outside your jurisdiction")))
            }
            Some((_, community)) => Ok(community.clone()),
        }
    }

    /// The write guard's rule for a row (see `crate::guard`): a record already stored
    /// under the row's code must lie where the caller may take `action`. Returns whether
    /// one is stored (always `true` for a city-wide caller, who is not asked).
    fn stored_in_reach(&mut self, field: &'static str, record: Record<'_>, action: Action) -> RowResult<bool> {
        if self.city_wide {
            return Ok(true);
        }
        let place = self.runtime.block_on(stored_place(&self.store, record)).map_err(|e| (field, e.to_string()))?;
        let Some(code) = place else { return Ok(false) };
        let chain = self.tree.chain_of(&code).unwrap_or_default();
        if self.actor.check_in(action, &chain).is_ok() || self.actor.check_in(Action::ManageRegistry, &chain).is_ok() {
            Ok(true)
        } else {
            Err((field, format!("{} {} is outside your jurisdiction", record.kind(), record.key())))
        }
    }

    /// A record the row refers to: it must be stored and readable by the caller.
    fn referenced(&mut self, field: &'static str, record: Record<'_>, action: Action) -> RowResult<()> {
        if self.stored_in_reach(field, record, action)? {
            Ok(())
        } else {
            Err((field, format!("{} {} is not on the registry", record.kind(), record.key())))
        }
    }

    fn row(&mut self, row: &Row<'_>, out: &mut Vec<RegistryRecord>) -> RowResult<()> {
        match self.kind {
            ImportKind::Residents => self.resident(row, out),
            ImportKind::Tenancies => self.tenancy(row, out),
            ImportKind::Properties => self.property(row, out),
        }
    }

    fn resident(&mut self, row: &Row<'_>, out: &mut Vec<RegistryRecord>) -> RowResult<()> {
        let grid =
            row.get("grid").ok_or_else(|| ("grid", "required in an import (the resident's grid)".to_string()))?;
        let community = self.place("grid", grid)?;
        let new = NewResident {
            code: row.text("code")?.to_string(),
            document: row.word("document", document_word, || DocumentKind::ALL.map(|k| k.as_str()).join(", "))?,
            id_number: row.text("id_number")?.to_string(),
            name: row.text("name")?.to_string(),
            sex: row.word("sex", sex_word, || "M, F, 男, 女".into())?,
            birth: row.date("birth_date")?,
            phone: row.owned("phone"),
            origin_province: row.owned("origin_province"),
            origin_city: row.owned("origin_city"),
            employer: row.owned("employer"),
            unit: row.owned("unit"),
            grid: Some(grid.to_string()),
        };
        if let Some(unit) = &new.unit {
            check_code("unit", unit).map_err(|e| (e.field, e.rule))?;
        }
        self.stored_in_reach("code", Record::Resident(&new.code), Action::ManageRegistry)?;
        let sealed =
            seal_resident(&self.personal_key, &self.indexer, new, grid.to_string(), community.clone(), self.today)
                .map_err(engine_field)?;
        let code = sealed.code.clone();
        out.push(RegistryRecord::Resident(Box::new(sealed)));
        if let Some(expires) = row.date("permit_expires")? {
            let kind = row.word("permit_kind", PermitKind::parse, PermitKind::words)?;
            let issued = row.date("permit_issued")?.unwrap_or((expires - 365).min(self.today));
            let endorsed = row.date("permit_endorsed")?;
            check_permit_dates(issued, expires, endorsed, self.today)
                .map_err(|e| (if e.field == "expires" { "permit_expires" } else { "permit_issued" }, e.rule))?;
            out.push(RegistryRecord::Permit(Permit {
                resident: code,
                kind: kind.unwrap_or(PermitKind::ResidencePermit),
                issued,
                expires,
                endorsed,
                community,
            }));
        }
        Ok(())
    }

    fn tenancy(&mut self, row: &Row<'_>, out: &mut Vec<RegistryRecord>) -> RowResult<()> {
        let code = row.text("code")?.to_string();
        check_code("code", &code).map_err(|e| (e.field, e.rule))?;
        let unit = row.text("unit")?.to_string();
        let mut members: Vec<String> = row
            .get("co_residents")
            .map(|list| {
                list.split([';', '；', '|']).map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect()
            })
            .unwrap_or_default();
        let lessee = match row.get("lessee") {
            Some(l) => l.to_string(),
            None if !members.is_empty() => members[0].clone(),
            None => return Err(("lessee", "required (or a first co-resident)".into())),
        };
        members.retain(|m| *m != lessee);
        members.insert(0, lessee.clone());
        members.dedup();
        let move_in = row.date("move_in")?.ok_or_else(|| ("move_in", "required".to_string()))?;
        let move_out = row.date("move_out")?;
        check_tenancy_dates(move_in, move_out, self.today).map_err(|e| (e.field, e.rule))?;
        let community = self.unit_community(&unit)?;
        self.stored_in_reach("code", Record::Tenancy(&code), Action::ManageRegistry)?;
        for (at, member) in members.iter().enumerate() {
            let field = if at == 0 { "lessee" } else { "co_residents" };
            self.referenced(field, Record::Resident(member), Action::ReadResidents)?;
        }
        let landlord = row.owned("landlord");
        if let Some(landlord) = &landlord {
            self.referenced("landlord", Record::Landlord(landlord), Action::ReadRegistry)?;
        }
        out.push(RegistryRecord::Tenancy(Tenancy {
            code,
            unit,
            landlord,
            lessee,
            members,
            move_in,
            move_out,
            community,
        }));
        Ok(())
    }

    /// A registered unit's community (which the caller must be able to write in).
    fn unit_community(&mut self, unit: &str) -> RowResult<String> {
        let found = self.runtime.block_on(self.store.housing_unit(unit)).map_err(|e| ("unit", e.to_string()))?;
        let found = found.ok_or_else(|| ("unit", format!("unit {unit} is not on the registry")))?;
        self.place("unit", &found.community)
    }

    fn property(&mut self, row: &Row<'_>, out: &mut Vec<RegistryRecord>) -> RowResult<()> {
        let grid = row.text("grid")?.to_string();
        let community = self.place("grid", &grid)?;
        let building_code = row.text("building")?.to_string();
        if let Some(code) = row.owned("landlord")
            && !self.seen_landlords.contains(&code)
        {
            self.stored_in_reach("landlord", Record::Landlord(&code), Action::ManageRegistry)?;
            let new = NewLandlord {
                code: code.clone(),
                kind: row
                    .word("landlord_kind", LandlordKind::parse, LandlordKind::words)?
                    .unwrap_or(LandlordKind::Person),
                name: row.text("landlord_name")?.to_string(),
                phone: row.owned("landlord_phone"),
                safety_person: row.owned("safety_person"),
                safety_phone: row.owned("safety_phone"),
                pledge_signed: row.date("pledge_signed")?,
                pledge_expires: row.date("pledge_expires")?,
                community: community.clone(),
            };
            out.push(RegistryRecord::Landlord(seal_landlord(&self.personal_key, &new).map_err(engine_field)?));
            self.seen_landlords.insert(code);
        }
        if !self.seen_buildings.contains(&building_code) {
            self.stored_in_reach("building", Record::Building(&building_code), Action::ManageRegistry)?;
            let building = Building {
                code: building_code.clone(),
                address: row.text("address")?.to_string(),
                grid: grid.clone(),
                community: community.clone(),
                lon: row.number("lon")?.ok_or_else(|| ("lon", "required".to_string()))?,
                lat: row.number("lat")?.ok_or_else(|| ("lat", "required".to_string()))?,
                kind: row.word("kind", BuildingKind::parse, BuildingKind::words)?.unwrap_or(BuildingKind::Other),
                floors: row.number("floors")?.unwrap_or(1),
            };
            check_building_fields(&building).map_err(engine_field)?;
            out.push(RegistryRecord::Building(building));
            self.seen_buildings.insert(building_code.clone());
        }
        let unit = HousingUnit {
            code: row.text("unit")?.to_string(),
            building: building_code,
            floor: row.number("floor")?.unwrap_or(1),
            area_m2: row.number("area_m2")?.ok_or_else(|| ("area_m2", "required".to_string()))?,
            rooms: row.number("rooms")?.unwrap_or(1),
            usage: row.word("usage", UnitUse::parse, UnitUse::words)?.unwrap_or(UnitUse::Residential),
            rent_yuan: row.number("rent_yuan")?,
            rental: row.word("rental", yes_no, || "1, 0, 是, 否".into())?.unwrap_or(true),
            landlord: row.owned("landlord"),
            community,
        };
        check_unit_fields(&unit).map_err(engine_field)?;
        self.stored_in_reach("unit", Record::HousingUnit(&unit.code), Action::ManageRegistry)?;
        out.push(RegistryRecord::Unit(unit));
        Ok(())
    }
}

fn engine_field(error: EngineError) -> (&'static str, String) {
    match error {
        EngineError::Invalid { field, message } => (field, message),
        other => ("row", other.to_string()),
    }
}

/// Counts the bytes a reader has given.
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A file's data rows.
type Records = Box<dyn Iterator<Item = Result<csv::StringRecord, String>> + Send>;

/// The rows of a file as CSV records (an XLSX sheet is converted cell by cell).
fn records(format: ImportFormat, source: Box<dyn Read + Send>) -> Result<(Vec<String>, Records), ImportError> {
    let file_error = |message: String| ImportError { row: 0, field: "file".into(), message };
    match format {
        ImportFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).buffer_capacity(1 << 20).from_reader(source);
            let header = reader.headers().map_err(|e| file_error(e.to_string()))?.iter().map(String::from).collect();
            Ok((header, Box::new(reader.into_records().map(|r| r.map_err(|e| e.to_string())))))
        }
        ImportFormat::Xlsx => {
            use calamine::{Data, Reader, Xlsx};
            let mut bytes = Vec::new();
            let mut source = source;
            source.read_to_end(&mut bytes).map_err(|e| file_error(e.to_string()))?;
            let mut book = Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| file_error(e.to_string()))?;
            let range = book
                .worksheet_range_at(0)
                .ok_or_else(|| file_error("the workbook has no sheet".into()))?
                .map_err(|e| file_error(e.to_string()))?;
            let cell = |data: &Data| -> String {
                match data {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
                    Data::Float(f) => f.to_string(),
                    Data::Int(i) => i.to_string(),
                    Data::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                    Data::DateTime(d) => {
                        let (y, m, day, ..) = d.to_ymd_hms_milli();
                        format!("{y:04}-{m:02}-{day:02}")
                    }
                    Data::DateTimeIso(s) | Data::DurationIso(s) => s.chars().take(10).collect(),
                    Data::Error(e) => format!("#{e:?}"),
                }
            };
            let mut rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(cell).collect()).collect();
            if rows.is_empty() {
                return Err(file_error("the sheet is empty".into()));
            }
            let header = rows.remove(0);
            Ok((header, Box::new(rows.into_iter().map(|r| Ok(csv::StringRecord::from(r))))))
        }
    }
}

impl Engine {
    /// Imports a file of `kind`, all or nothing: on success every row is on the registry
    /// (one change-stream row and one audit record say so); on any bad row nothing is and
    /// the error lists the bad rows.
    pub async fn import_registry(
        &self,
        caller: &Caller,
        kind: ImportKind,
        format: ImportFormat,
        source: Box<dyn Read + Send>,
        total_bytes: Option<u64>,
        progress: Box<dyn FnMut(ImportProgress) + Send>,
    ) -> Result<ImportReport, EngineError> {
        self.authorize(caller, Action::ManageRegistry, None, "registry.import", None).await?;
        let bytes = Arc::new(AtomicU64::new(0));
        let source: Box<dyn Read + Send> = Box::new(Counting { inner: source, bytes: Arc::clone(&bytes) });
        let context = Context {
            kind,
            actor: caller.actor.clone(),
            tree: self.jurisdictions.read().expect("jurisdictions lock").clone(),
            personal_key: self.config.keys.personal_data(),
            indexer: self.indexer(),
            today: self.today(),
            places: HashMap::new(),
            seen_buildings: HashSet::new(),
            seen_landlords: HashSet::new(),
            city_wide: match &caller.actor {
                Actor::User(user) => user.scope.kind == JurisdictionKind::City,
                Actor::System { .. } => true,
                Actor::Device(_) | Actor::Anonymous => false,
            },
            store: Arc::clone(&self.store),
            runtime: tokio::runtime::Handle::current(),
        };
        let (feed, receiver) = tokio::sync::mpsc::channel::<ImportFeed>(16);
        let reader =
            tokio::task::spawn_blocking(move || read_file(context, format, source, bytes, total_bytes, feed, progress));
        let now = self.now();
        let change = RegistryChange {
            seq: 0,
            at: now,
            entity: "import".into(),
            code: kind.as_str().into(),
            community: caller_community(caller),
            change: format!("imported_{}", kind.as_str()),
            actor: caller.actor.name(),
        };
        let entry = caller.entry(now, "registry.import", Outcome::Allowed).target("import", kind.as_str());
        let (entity, community, imported) = ("import".to_string(), change.community.clone(), change.change.clone());
        let outbox = Outbox::of_new_rows(now, move |rows| {
            vec![Event::RegistryChanged {
                entity: entity.clone(),
                code: kind.as_str().into(),
                community: community.clone(),
                change: format!("{imported}:{}", rows[0]),
            }]
        });
        let stored = self.store.import_registry(receiver, change.clone(), Audited::new(entry, outbox)).await;
        let read = reader.await.map_err(|e| EngineError::Invalid { field: "file", message: e.to_string() })?;
        let (mut report, errors, bad_rows) = read;
        if bad_rows > 0 {
            return Err(EngineError::ImportRefused { errors, bad_rows });
        }
        match stored {
            Ok(counts) => {
                report.records = counts.rows;
                self.publish(
                    now,
                    Event::RegistryChanged {
                        entity: "import".into(),
                        code: kind.as_str().into(),
                        community: change.community,
                        change: format!("{}:{}", change.change, counts.rows),
                    },
                );
                Ok(report)
            }
            Err(StoreError::Rejected { row, field, message }) => Err(EngineError::ImportRefused {
                errors: vec![ImportError { row, field: field.to_string(), message }],
                bad_rows: 1,
            }),
            Err(other) => Err(other.into()),
        }
    }
}

/// The caller's jurisdiction code, for the change row of an import.
fn caller_community(caller: &Caller) -> String {
    match &caller.actor {
        Actor::User(user) => user.scope.code.clone(),
        _ => String::new(),
    }
}

/// Reads, checks and seals every row; sends good batches while no row has failed.
/// Returns the report, the bad rows it lists and how many there were.
fn read_file(
    mut context: Context,
    format: ImportFormat,
    source: Box<dyn Read + Send>,
    bytes: Arc<AtomicU64>,
    total_bytes: Option<u64>,
    feed: tokio::sync::mpsc::Sender<ImportFeed>,
    mut progress: Box<dyn FnMut(ImportProgress) + Send>,
) -> (ImportReport, Vec<ImportError>, u64) {
    let cpu_before = fangkong_store::thread_cpu_seconds();
    let run_queue_before = fangkong_store::thread_run_queue_seconds();
    let mut report = ImportReport::default();
    let mut errors = Vec::new();
    let mut bad_rows = 0u64;
    let abort = |feed: &tokio::sync::mpsc::Sender<ImportFeed>, reason: &str| {
        let _ = feed.blocking_send(ImportFeed::Abort(reason.to_string()));
    };
    let (header, rows) = match records(format, source) {
        Ok(found) => found,
        Err(error) => {
            abort(&feed, &error.message);
            return (report, vec![error], 1);
        }
    };
    let columns = match Columns::new(context.kind, &header) {
        Ok((columns, ignored)) => {
            report.ignored_columns = ignored;
            columns
        }
        Err(error) => {
            abort(&feed, &error.message);
            return (report, vec![error], 1);
        }
    };
    let mut batch: Vec<(u64, RegistryRecord)> = Vec::with_capacity(BATCH);
    let mut out = Vec::with_capacity(4);
    let mut store_gone = false;
    for (i, record) in rows.enumerate() {
        let number = i as u64 + 2;
        report.rows += 1;
        let outcome = match &record {
            Ok(record) => context.row(&Row { columns: &columns, record }, &mut out),
            Err(message) => Err(("file", message.clone())),
        };
        match outcome {
            Ok(()) if bad_rows == 0 && !store_gone => batch.extend(out.drain(..).map(|r| (number, r))),
            Ok(()) => out.clear(),
            Err((field, message)) => {
                out.clear();
                bad_rows += 1;
                if errors.len() < MAX_REPORTED {
                    errors.push(ImportError { row: number, field: field.to_string(), message });
                }
                batch.clear();
            }
        }
        if batch.len() >= BATCH {
            // The store stops receiving when a record of its own fails: keep reading to
            // report the file's own faults, but send nothing more.
            store_gone = feed.blocking_send(ImportFeed::Batch(std::mem::take(&mut batch))).is_err();
            batch.reserve(BATCH);
        }
        if number.is_multiple_of(65_536) {
            progress(ImportProgress { rows: report.rows, bytes: bytes.load(Ordering::Relaxed), total_bytes });
        }
    }
    if bad_rows > 0 {
        abort(&feed, &format!("{bad_rows} rows of the file were refused"));
    } else if !batch.is_empty() {
        let _ = feed.blocking_send(ImportFeed::Batch(batch));
    }
    progress(ImportProgress { rows: report.rows, bytes: bytes.load(Ordering::Relaxed), total_bytes });
    tracing::info!(
        rows = report.rows,
        bad_rows,
        reader_cpu_s = fangkong_store::thread_cpu_seconds() - cpu_before,
        reader_run_queue_s = fangkong_store::thread_run_queue_seconds() - run_queue_before,
        "import file read, checked and sealed"
    );
    (report, errors, bad_rows)
}
