//! The residence and rental-housing registry (流动人口和出租屋管理): buildings, their units,
//! landlords and the person responsible for safety (治安责任人), tenancies with move-in and
//! move-out, residents and their residence permits (居住证), community workstations
//! (社区工作站), verification visits (核查走访) and reports of people living where no tenancy
//! says they do.
//!
//! The rules here are pure: the order of dates, a resident's stated birth date and sex
//! against their identity number, the occupancy limits, and which records are due for
//! attention ([`AlertKind`]). Every refusal names its field and its rule.
//!
//! The registry records no ethnicity, religion or other group trait: there is no field for
//! one. Origin (province and city as registered, 户籍地) is kept because the permit rules
//! need it; analytics never group by it.

use std::fmt;

use crate::documents::{CheckedDocument, DocumentKind, days_from_civil};

/// A day as days since 1970-01-01 (UTC dates; the registry does not need times of day).
pub type Day = i64;

/// `YYYY-MM-DD` (also `YYYY/MM/DD` and `YYYYMMDD`, as spreadsheets write them).
pub fn parse_date(text: &str) -> Option<Day> {
    let text = text.trim();
    let (y, m, d) = if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        (&text[..4], &text[4..6], &text[6..])
    } else {
        let mut parts = text.split(['-', '/']);
        let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
        if parts.3.is_some() || parts.0.len() != 4 {
            return None;
        }
        (parts.0, parts.1, parts.2)
    };
    if ![y, m, d].iter().all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    days_from_civil(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `YYYY-MM-DD` of a day.
pub fn format_date(day: Day) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// The words it may be written as, for error messages.
            pub fn words() -> String {
                $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// What a building is.
    BuildingKind {
        /// 城中村 (a village's self-built rental blocks).
        UrbanVillage => "urban_village",
        /// 宿舍 (a factory's or company's dormitory).
        Dormitory => "dormitory",
        /// 住宅小区 (a housing estate).
        Residential => "residential",
        /// 商业/商住.
        Commercial => "commercial",
        Other => "other",
    }
);

word_enum!(
    /// What a unit is used for.
    UnitUse {
        Residential => "residential",
        Dormitory => "dormitory",
        /// 商住两用 / 三小场所: a shop or workshop people also sleep in.
        Mixed => "mixed",
        Commercial => "commercial",
    }
);

word_enum!(
    LandlordKind {
        Person => "person",
        /// A company, a village's joint-stock company (股份合作公司), a property manager.
        Organisation => "organisation",
    }
);

word_enum!(
    Sex {
        Male => "M",
        Female => "F",
    }
);

word_enum!(
    PermitKind {
        /// 居住证 (since 2008 in Shenzhen; endorsed yearly or six-monthly).
        ResidencePermit => "residence_permit",
        /// 暂住证 (the older temporary residence permit).
        TemporaryPermit => "temporary_permit",
    }
);

word_enum!(
    /// What a verification visit found.
    VisitOutcome {
        /// Everyone registered lives there; nobody else does.
        Verified => "verified",
        /// Some record is wrong (someone moved out, details differ).
        Discrepancy => "discrepancy",
        /// People live there who are not registered.
        UnregisteredOccupants => "unregistered_occupants",
        NobodyHome => "nobody_home",
    }
);

word_enum!(
    /// What needs a coordinator's attention.
    AlertKind {
        PermitExpiring => "permit_expiring",
        PermitExpired => "permit_expired",
        Overcrowded => "overcrowded",
        /// A resident reported living at a unit where no open tenancy lists them.
        UnregisteredResident => "unregistered_resident",
        /// A landlord whose safety responsibility pledge (治安责任书) has lapsed or was never signed.
        PledgeLapsed => "pledge_lapsed",
    }
);

/// A building on the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Building {
    pub code: String,
    pub address: String,
    /// The grid (网格) it stands in; its community and the rest of the chain follow.
    pub grid: String,
    pub community: String,
    pub lon: f64,
    pub lat: f64,
    pub kind: BuildingKind,
    pub floors: u32,
}

/// A unit (room, flat) in a building.
#[derive(Clone, Debug, PartialEq)]
pub struct HousingUnit {
    pub code: String,
    pub building: String,
    pub floor: i32,
    /// Usable area in square metres.
    pub area_m2: f64,
    pub rooms: u32,
    pub usage: UnitUse,
    /// Monthly rent in yuan, when let.
    pub rent_yuan: Option<u32>,
    pub rental: bool,
    pub landlord: Option<String>,
    pub community: String,
}

/// A landlord (出租人) and the person responsible for the unit's safety.
#[derive(Clone, Debug, PartialEq)]
pub struct Landlord {
    pub code: String,
    pub kind: LandlordKind,
    pub name: String,
    pub phone: Option<String>,
    /// 治安责任人: the landlord themselves, or a manager an organisation names.
    pub safety_person: String,
    pub safety_phone: Option<String>,
    /// The safety responsibility pledge: when signed and until when it holds.
    pub pledge_signed: Option<Day>,
    pub pledge_expires: Option<Day>,
    pub community: String,
}

/// A person on the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Resident {
    pub code: String,
    pub document: DocumentKind,
    /// Normalised as [`crate::documents::check_document`] gives it.
    pub id_number: String,
    pub name: String,
    pub sex: Sex,
    pub birth: Day,
    /// E.164.
    pub phone: Option<String>,
    /// 户籍地 as registered.
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    /// Where they live: a unit of the registry, when known.
    pub unit: Option<String>,
    /// The grid and community of that place (or of the registering workstation).
    pub grid: String,
    pub community: String,
}

/// A tenancy: who lives in a unit from when to when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenancy {
    pub code: String,
    pub unit: String,
    pub landlord: Option<String>,
    /// The lessee (承租人), also the first member.
    pub lessee: String,
    /// Everyone registered as living there, the lessee included (同住人).
    pub members: Vec<String>,
    pub move_in: Day,
    pub move_out: Option<Day>,
    pub community: String,
}

/// A resident's current residence permit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    pub resident: String,
    pub kind: PermitKind,
    pub issued: Day,
    pub expires: Day,
    /// The last endorsement (签注), due every six months.
    pub endorsed: Option<Day>,
    pub community: String,
}

/// A community workstation (社区工作站) and its coordinators' home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workstation {
    pub code: String,
    pub community: String,
    pub name: String,
    pub address: String,
}

/// A verification visit to a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visit {
    pub id: i64,
    pub unit: String,
    pub community: String,
    pub day: Day,
    /// Who visited (the username).
    pub by: String,
    pub outcome: VisitOutcome,
    /// People found living there, when counted.
    pub occupants: Option<u32>,
    pub note: String,
}

/// A report that a resident lives at a unit (from a visit, a tip, a hotel check…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub id: i64,
    pub resident: String,
    pub unit: String,
    pub community: String,
    pub day: Day,
    pub by: String,
    pub note: String,
}

/// An item on a coordinator's list.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub community: String,
    /// The record concerned: a resident, unit or landlord code.
    pub subject: String,
    /// The day it became (or becomes) due.
    pub due: Option<Day>,
    /// One line for the list, without personal data.
    pub detail: String,
}

/// A refused record: the field and the rule.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct RecordError {
    pub field: &'static str,
    pub rule: String,
}

impl RecordError {
    pub fn new(field: &'static str, rule: impl Into<String>) -> RecordError {
        RecordError { field, rule: rule.into() }
    }
}

/// A stated birth date and sex against what the identity number encodes (when it does).
pub fn check_person(
    document: &CheckedDocument,
    birth: Option<Day>,
    sex: Option<Sex>,
    today: Day,
) -> Result<(Day, Sex), RecordError> {
    let birth = match (birth, document.birth_day) {
        (Some(stated), Some(encoded)) if stated != encoded => {
            return Err(RecordError::new(
                "birth_date",
                format!("{} does not match the identity number ({})", format_date(stated), format_date(encoded)),
            ));
        }
        (Some(day), _) | (None, Some(day)) => day,
        (None, None) => return Err(RecordError::new("birth_date", "required for this document")),
    };
    if birth > today {
        return Err(RecordError::new("birth_date", "is in the future"));
    }
    let encoded = document.male.map(|male| if male { Sex::Male } else { Sex::Female });
    let sex = match (sex, encoded) {
        (Some(stated), Some(encoded)) if stated != encoded => {
            return Err(RecordError::new(
                "sex",
                format!("{stated} does not match the identity number ({encoded}: its 17th digit)"),
            ));
        }
        (Some(sex), _) | (None, Some(sex)) => sex,
        (None, None) => return Err(RecordError::new("sex", "required for this document")),
    };
    Ok((birth, sex))
}

/// A tenancy's dates: move-in not in the future, move-out after move-in and not in the
/// future either.
pub fn check_tenancy_dates(move_in: Day, move_out: Option<Day>, today: Day) -> Result<(), RecordError> {
    if move_in > today {
        return Err(RecordError::new("move_in", "is in the future"));
    }
    if let Some(out) = move_out {
        if out < move_in {
            return Err(RecordError::new(
                "move_out",
                format!("{} is before move-in ({})", format_date(out), format_date(move_in)),
            ));
        }
        if out > today {
            return Err(RecordError::new("move_out", "is in the future"));
        }
    }
    Ok(())
}

/// A permit's dates: expiry after issue, endorsement between them.
pub fn check_permit_dates(issued: Day, expires: Day, endorsed: Option<Day>, today: Day) -> Result<(), RecordError> {
    if issued > today {
        return Err(RecordError::new("issued", "is in the future"));
    }
    if expires <= issued {
        return Err(RecordError::new("expires", "must be after the issue date"));
    }
    if let Some(day) = endorsed
        && (day < issued || day > today)
    {
        return Err(RecordError::new("endorsed", "must be between the issue date and today"));
    }
    Ok(())
}

/// Occupancy limits (configurable; Shenzhen's rental rules set a minimum area per person).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OccupancyLimits {
    /// Usable area each person needs, in m² (0 turns the rule off).
    pub min_area_per_person_m2: f64,
    /// Persons per room (0 turns the rule off).
    pub max_persons_per_room: u32,
}

impl Default for OccupancyLimits {
    fn default() -> OccupancyLimits {
        OccupancyLimits { min_area_per_person_m2: 5.0, max_persons_per_room: 4 }
    }
}

impl OccupancyLimits {
    /// Why `persons` are too many for a unit, or `None`.
    pub fn exceeded(&self, area_m2: f64, rooms: u32, persons: u32) -> Option<String> {
        if persons == 0 {
            return None;
        }
        if self.min_area_per_person_m2 > 0.0 && area_m2 > 0.0 {
            let per_person = area_m2 / f64::from(persons);
            if per_person < self.min_area_per_person_m2 {
                return Some(format!(
                    "{persons} persons in {area_m2:.0} m² ({per_person:.1} m² each, at least {:.1})",
                    self.min_area_per_person_m2
                ));
            }
        }
        if self.max_persons_per_room > 0 && rooms > 0 && persons > rooms * self.max_persons_per_room {
            return Some(format!(
                "{persons} persons in {rooms} rooms (at most {} per room)",
                self.max_persons_per_room
            ));
        }
        None
    }
}

/// The alert a permit raises on `today`, if any: expired, or expiring within
/// `warn_days`.
pub fn permit_alert(permit: &Permit, today: Day, warn_days: i64) -> Option<Alert> {
    let (kind, detail) = if permit.expires < today {
        (AlertKind::PermitExpired, format!("{} expired on {}", permit.kind, format_date(permit.expires)))
    } else if permit.expires <= today + warn_days {
        (AlertKind::PermitExpiring, format!("{} expires on {}", permit.kind, format_date(permit.expires)))
    } else {
        return None;
    };
    Some(Alert {
        kind,
        community: permit.community.clone(),
        subject: permit.resident.clone(),
        due: Some(permit.expires),
        detail,
    })
}

/// The alert a landlord's pledge raises on `today`, if any.
pub fn pledge_alert(landlord: &Landlord, today: Day) -> Option<Alert> {
    let detail = match landlord.pledge_expires {
        Some(day) if day >= today => return None,
        Some(day) => format!("safety pledge lapsed on {}", format_date(day)),
        None => "no safety pledge signed".to_string(),
    };
    Some(Alert {
        kind: AlertKind::PledgeLapsed,
        community: landlord.community.clone(),
        subject: landlord.code.clone(),
        due: landlord.pledge_expires,
        detail,
    })
}

/// An identity number as those who do not need it whole see it: the first three and the
/// last four characters.
pub fn mask_id_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let hidden = chars.len() - 7;
    chars[..3].iter().chain(std::iter::repeat_n(&'*', hidden)).chain(&chars[chars.len() - 4..]).collect()
}

/// A phone as those who do not need it whole see it: the last four digits.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let keep = digits.len().min(4);
    format!("***{}", digits[digits.len() - keep..].iter().collect::<String>())
}

/// A registry code: 1–40 letters, digits, `-` or `_`.
pub fn check_code(field: &'static str, code: &str) -> Result<(), RecordError> {
    if (1..=40).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(RecordError::new(field, "1–40 letters, digits, - or _"))
    }
}

/// Free text of a record: not empty (when `required`), at most `max` characters, no
/// control or invisible formatting characters ([`crate::text`]).
pub fn check_text(field: &'static str, text: &str, max: usize, required: bool) -> Result<(), RecordError> {
    if required && text.trim().is_empty() {
        return Err(RecordError::new(field, "required"));
    }
    if text.chars().count() > max || crate::text::has_hidden(text, false) {
        return Err(RecordError::new(
            field,
            format!("at most {max} characters, no control or invisible formatting characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
