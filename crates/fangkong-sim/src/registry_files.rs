//! The synthetic registry as the files `fangkong import properties|residents|tenancies`
//! reads (column names in `docs/operations.md`): buildings with their units and landlords,
//! residents with their residence permits, and tenancies. The demo imports them through the
//! engine like a workstation would; `bench registry` uses [`unit_shape`] for its own files.
//!
//! The records are collected in memory and written at the end (landlords arrive after
//! their buildings), so this is for demo-sized cities, not the full 20 million.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::population::{self, Building, BuildingKind, Landlord, PopulationSink, Resident, Sex, Tenancy, Unit};

/// A unit's area, rooms and use, drawn from its code (urban-village rooms are small,
/// dormitory rooms hold a few beds, flats in commercial buildings are larger).
pub fn unit_shape(unit: &Unit, kind: BuildingKind) -> (f64, u32, &'static str) {
    let hash = fnv(&unit.id);
    let pick = |low: u32, high: u32| low + hash % (high - low + 1);
    match kind {
        BuildingKind::UrbanVillage => (f64::from(pick(15, 45)), 1 + hash % 2, "residential"),
        BuildingKind::Dormitory => (f64::from(pick(18, 30)), 1, "dormitory"),
        BuildingKind::Commercial => (f64::from(pick(45, 120)), 1 + hash % 4, "residential"),
    }
}

fn fnv(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

fn date(day: i64) -> String {
    let (y, m, d) = population::civil_date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Collects a generated city's registry records; [`RegistryFiles::write`] writes them.
#[derive(Debug)]
pub struct RegistryFiles {
    as_of_day: i64,
    buildings: Vec<Building>,
    units: Vec<Unit>,
    residents: Vec<Resident>,
    tenancies: Vec<Tenancy>,
    landlord_of: HashMap<String, usize>,
    landlords: Vec<Landlord>,
}

/// How many rows each file got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub units: u64,
    pub residents: u64,
    pub tenancies: u64,
}

impl RegistryFiles {
    /// `as_of_day` (Unix days) is the generator's: pledges are dated around it.
    pub fn new(as_of_day: i64) -> RegistryFiles {
        RegistryFiles {
            as_of_day,
            buildings: Vec::new(),
            units: Vec::new(),
            residents: Vec::new(),
            tenancies: Vec::new(),
            landlord_of: HashMap::new(),
            landlords: Vec::new(),
        }
    }

    /// Writes `properties.csv`, `residents.csv` and `tenancies.csv` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Written> {
        let create =
            |name: &str| -> std::io::Result<BufWriter<File>> { Ok(BufWriter::new(File::create(dir.join(name))?)) };
        let names: HashMap<&str, &str> = self.residents.iter().map(|r| (r.id.as_str(), r.name.as_str())).collect();
        let mut written = Written::default();

        let mut properties = create("properties.csv")?;
        writeln!(
            properties,
            "building,address,grid,lon,lat,kind,floors,unit,floor,area_m2,rooms,usage,rent_yuan,rental,\
             landlord,landlord_kind,landlord_name,safety_person,pledge_signed,pledge_expires"
        )?;
        let buildings: HashMap<&str, &Building> = self.buildings.iter().map(|b| (b.id.as_str(), b)).collect();
        // A unit is let by its tenancy's landlord (a commercial building has many owners),
        // else by its building's.
        let by_id: HashMap<&str, &Landlord> = self.landlords.iter().map(|l| (l.id.as_str(), l)).collect();
        let mut unit_landlord: HashMap<&str, &Landlord> = HashMap::new();
        for t in &self.tenancies {
            if let Some(l) = t.landlord.as_deref().and_then(|id| by_id.get(id)) {
                unit_landlord.entry(t.unit.as_str()).or_insert(l);
            }
        }
        let mut listed: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for unit in &self.units {
            let Some(b) = buildings.get(unit.building.as_str()) else { continue };
            let (area, rooms, usage) = unit_shape(unit, b.kind);
            // Rent by area, a little above the urban villages' ¥40/m² of the mid-2020s.
            let rent = if unit.rental {
                format!("{}", (area * f64::from(35 + fnv(&unit.id) % 30)) as u32)
            } else {
                String::new()
            };
            let landlord = unit_landlord
                .get(unit.id.as_str())
                .copied()
                .or_else(|| self.landlord_of.get(&b.id).map(|&i| &self.landlords[i]));
            if let Some(l) = landlord {
                listed.insert(l.id.as_str());
            }
            let (code, lkind, name, safety, signed, expires) = match landlord {
                Some(l) => {
                    let (kind, name) = match (&l.resident, &l.company) {
                        (Some(resident), _) => ("person", names.get(resident.as_str()).copied().unwrap_or("")),
                        (None, Some(company)) => ("organisation", company.as_str()),
                        (None, None) => ("organisation", ""),
                    };
                    let safety = if kind == "person" { name } else { "" };
                    // Pledges are signed for a year; about one in eight has lapsed.
                    let signed = self.as_of_day - 30 - i64::from(fnv(&l.id) % 380);
                    (l.id.as_str(), kind, name, safety, date(signed), date(signed + 365))
                }
                None => ("", "", "", "", String::new(), String::new()),
            };
            let kind = match b.kind {
                BuildingKind::UrbanVillage => "urban_village",
                BuildingKind::Dormitory => "dormitory",
                BuildingKind::Commercial => "residential",
            };
            writeln!(
                properties,
                "{},{},{},{:.6},{:.6},{kind},{},{},{},{area},{rooms},{usage},{rent},{},{code},{lkind},{name},{safety},{},{}",
                b.id,
                b.address,
                b.grid,
                b.lon,
                b.lat,
                b.floors,
                unit.id,
                unit.floor,
                u8::from(unit.rental),
                if code.is_empty() { "" } else { signed.as_str() },
                if code.is_empty() { "" } else { expires.as_str() },
            )?;
            written.units += 1;
        }
        properties.flush()?;

        let mut residents = create("residents.csv")?;
        writeln!(residents, "code,name,sex,birth_date,id_number,phone,unit,grid,permit_kind,permit_expires")?;
        for (n, r) in self.residents.iter().enumerate() {
            let sex = if r.sex == Sex::Male { "M" } else { "F" };
            let (kind, expires) = match r.permit_expires_day {
                Some(day) => ("residence_permit", date(day)),
                None => ("", String::new()),
            };
            // A synthetic mobile number (the 199 range), from the resident's sequence.
            writeln!(
                residents,
                "{},{},{sex},{},{},199{:08},{},{},{kind},{expires}",
                r.id,
                r.name,
                date(r.birth_day),
                r.id_number,
                n % 100_000_000,
                r.unit,
                r.grid
            )?;
            written.residents += 1;
        }
        residents.flush()?;

        let mut tenancies = create("tenancies.csv")?;
        writeln!(tenancies, "code,unit,move_in,landlord,lessee,co_residents")?;
        for t in &self.tenancies {
            // Members the generator left unregistered stay out of the file: the registry
            // learns of them from visits (the "unregistered resident" alert).
            let registered: Vec<&str> =
                t.residents.iter().filter(|r| !t.unregistered.contains(r)).map(String::as_str).collect();
            let Some(lessee) = registered.first() else { continue };
            let move_in = date(t.start_day.min(self.as_of_day));
            writeln!(
                tenancies,
                "{},{},{move_in},{},{lessee},{}",
                t.id,
                t.unit,
                t.landlord.as_deref().filter(|l| listed.contains(l)).unwrap_or(""),
                registered.join(";")
            )?;
            written.tenancies += 1;
        }
        tenancies.flush()?;
        Ok(written)
    }
}

impl PopulationSink for RegistryFiles {
    fn building(&mut self, building: &Building) {
        self.buildings.push(building.clone());
    }
    fn unit(&mut self, unit: &Unit) {
        self.units.push(unit.clone());
    }
    fn resident(&mut self, resident: &Resident) {
        self.residents.push(resident.clone());
    }
    fn landlord(&mut self, landlord: &Landlord) {
        for building in &landlord.buildings {
            self.landlord_of.insert(building.clone(), self.landlords.len());
        }
        self.landlords.push(landlord.clone());
    }
    fn tenancy(&mut self, tenancy: &Tenancy) {
        self.tenancies.push(tenancy.clone());
    }
    fn force_unit(&mut self, _: &population::ForceUnit) {}
    fn force_member(&mut self, _: &population::ForceMember) {}
    fn place(&mut self, _: &population::Place) {}
    fn informant(&mut self, _: &population::Informant) {}
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::city::{CityOptions, shenzhen};
    use crate::population::PopulationOptions;

    fn rows(dir: &Path, name: &str) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
    }

    #[test]
    fn the_files_refer_only_to_records_they_hold() {
        let city = shenzhen(&CityOptions::default());
        let options = PopulationOptions { scale: 0.001, ..PopulationOptions::default() };
        let mut files = RegistryFiles::new(options.as_of_day);
        population::generate(&city, &options, &mut files, &mut |_| {});
        let dir = std::env::temp_dir().join(format!("fangkong-registry-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = files.write(&dir).unwrap();
        let properties = rows(&dir, "properties.csv");
        let residents = rows(&dir, "residents.csv");
        let tenancies = rows(&dir, "tenancies.csv");
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(properties.len() as u64 - 1, written.units);
        assert_eq!(residents.len() as u64 - 1, written.residents);
        assert_eq!(tenancies.len() as u64 - 1, written.tenancies);
        assert!(written.residents > 15_000 && written.tenancies > 3_000, "{written:?}");
        // Every row has every column (no field holds a comma).
        for file in [&properties, &residents, &tenancies] {
            assert!(file.iter().all(|row| row.len() == file[0].len()));
        }
        let units: HashSet<&str> = properties[1..].iter().map(|p| p[7].as_str()).collect();
        let landlords: HashSet<&str> =
            properties[1..].iter().map(|p| p[14].as_str()).filter(|l| !l.is_empty()).collect();
        let people: HashSet<&str> = residents[1..].iter().map(|r| r[0].as_str()).collect();
        for t in &tenancies[1..] {
            assert!(units.contains(t[1].as_str()), "tenancy {} names a unit not in properties.csv", t[0]);
            assert!(
                t[3].is_empty() || landlords.contains(t[3].as_str()),
                "tenancy {} names an unlisted landlord",
                t[0]
            );
            assert!(t[5].split(';').all(|r| people.contains(r)), "tenancy {} names an unknown resident", t[0]);
            assert!(t[5].split(';').any(|r| r == t[4]), "the lessee lives there");
        }
        // Some pledges have lapsed and some permits run out soon: the alerts have work.
        let today = date(options.as_of_day);
        assert!(properties[1..].iter().any(|p| !p[19].is_empty() && p[19] < today));
        assert!(properties[1..].iter().any(|p| p[19] > today));
    }
}
