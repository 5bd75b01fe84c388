//! `fangkong sim generate`: the synthetic Shenzhen at any scale, for benchmarks and imports:
//! the jurisdiction tree with its shapes, then residents, housing, the force and the places,
//! counted and (with `--out DIR`) written as CSV files.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use fangkong_sim::city::{CityOptions, shenzhen};
use fangkong_sim::population::{
    self, Building, Counts, ForceMember, ForceUnit, Informant, Landlord, Place, PopulationOptions, PopulationSink,
    Progress, Resident, Sex, Tenancy, Unit,
};

use crate::print_line;

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Generate the synthetic city: print counts and time; write CSV files with --out.
    Generate(GenerateArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// 1.0 is the full city (20 M residents, 50 k force members); 0.01 a small town of it.
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    scale: f64,
    /// The same seed gives the same city, record for record.
    #[arg(long, default_value_t = 2003)]
    seed: u64,
    /// Write one CSV file per kind of record into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale <= 4.0 => Ok(scale),
        _ => Err("a number above 0 and at most 4".into()),
    }
}

pub fn sim(command: SimCommand) -> anyhow::Result<()> {
    let SimCommand::Generate(args) = command;
    let started = Instant::now();
    let city = shenzhen(&CityOptions { seed: args.seed, ..CityOptions::default() });
    let city_time = started.elapsed();
    let options = PopulationOptions { seed: args.seed, scale: args.scale, ..PopulationOptions::default() };
    let mut bar = ProgressBar::new();
    let counts = match &args.out {
        Some(dir) => {
            let mut files = CsvFiles::create(dir)?;
            files.jurisdictions(&city)?;
            let counts = population::generate(&city, &options, &mut files, &mut |p| bar.show(p, started));
            files.finish()?;
            counts
        }
        None => population::generate(&city, &options, &mut population::CountingSink::default(), &mut |p| {
            bar.show(p, started)
        }),
    };
    bar.done();
    report(&city, &counts, args.scale, args.seed, city_time.as_secs_f64(), started.elapsed().as_secs_f64());
    if let Some(dir) = &args.out {
        print_line(&format!("written to {}", dir.display()));
    }
    Ok(())
}

fn report(city: &fangkong_sim::city::CityMap, counts: &Counts, scale: f64, seed: u64, city_secs: f64, secs: f64) {
    use fangkong_core::jurisdiction::JurisdictionKind::*;
    print_line(&format!("synthetic Shenzhen, scale {scale}, seed {seed}"));
    let rows: Vec<(&str, u64)> = vec![
        ("districts", city.count(District) as u64),
        ("sub-districts", city.count(Subdistrict) as u64),
        ("communities", city.count(Community) as u64),
        ("grids", city.count(Grid) as u64),
        ("police stations", city.count(PoliceStation) as u64),
        ("police districts", city.count(PoliceDistrict) as u64),
        ("residents", counts.residents),
        ("  without local hukou", counts.non_hukou_residents),
        ("households", counts.households),
        ("buildings", counts.buildings),
        ("housing units", counts.units),
        ("  rental units", counts.rental_units),
        ("landlords", counts.landlords),
        ("tenancies", counts.tenancies),
        ("  unregistered co-residents", counts.unregistered),
        ("force units (teams)", counts.force_units),
        ("force members", counts.force_members.iter().sum()),
        ("  police", counts.force_members[0]),
        ("  security / joint-defence guards", counts.force_members[1]),
        ("  internal-unit guards", counts.force_members[2]),
        ("  volunteers", counts.force_members[3]),
        ("hotels", counts.hotels),
        ("special trades", counts.trades),
        ("alarm points", counts.alarm_points),
        ("checkpoints", counts.checkpoints),
        ("informants", counts.informants),
    ];
    for (name, count) in rows {
        print_line(&format!("  {name:<36} {:>12}", thousands(count)));
    }
    print_line(&format!("generated in {secs:.1} s (jurisdictions and shapes {city_secs:.1} s)"));
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A one-line bar on stderr (redrawn on a terminal; a line per 10 % otherwise).
struct ProgressBar {
    terminal: bool,
    last_tenth: usize,
}

impl ProgressBar {
    fn new() -> ProgressBar {
        ProgressBar { terminal: std::io::stderr().is_terminal(), last_tenth: 0 }
    }

    fn show(&mut self, progress: Progress, started: Instant) {
        let share = progress.grids_done as f64 / progress.grids.max(1) as f64;
        let width = 30;
        let filled = (share * width as f64) as usize;
        let line = format!(
            "[{}{}] {:>3.0}%  {}/{} grids  {} residents  {:.0} s",
            "#".repeat(filled),
            ".".repeat(width - filled),
            share * 100.0,
            progress.grids_done,
            progress.grids,
            thousands(progress.residents),
            started.elapsed().as_secs_f64()
        );
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r{line}");
        } else if (share * 10.0) as usize > self.last_tenth || progress.grids_done == progress.grids {
            self.last_tenth = (share * 10.0) as usize;
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    }

    fn done(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// One CSV file per kind of record. Fields never contain commas, quotes or newlines
/// (codes, numbers and generated names), so no quoting is needed; `field` checks it.
struct CsvFiles {
    dir: PathBuf,
    files: Vec<(&'static str, BufWriter<File>)>,
    error: Option<std::io::Error>,
}

const FILES: [(&str, &str); 10] = [
    ("jurisdictions", "code,kind,parent,name_zh,name_en"),
    ("buildings", "id,grid,kind,floors,units,lon,lat,address"),
    ("units", "id,building,floor,rental"),
    ("residents", "id,name,sex,birth_date,id_number,local_hukou,unit,grid,permit_expires"),
    ("landlords", "id,resident,company,buildings"),
    ("tenancies", "id,unit,landlord,residents,start_date,months,unregistered"),
    ("force_units", "id,station,category,mode,beat,call_sign"),
    ("force_members", "id,unit,category,name,sex,birth_date,id_number,device"),
    ("places", "id,kind,name,grid,lon,lat,capacity"),
    ("informants", "id,resident,grid,landlord"),
];

fn date(day: i64) -> String {
    let (year, month, day) = population::civil_date(day);
    format!("{year:04}-{month:02}-{day:02}")
}

fn sex(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "M",
        Sex::Female => "F",
    }
}

impl CsvFiles {
    fn create(dir: &Path) -> anyhow::Result<CsvFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files = Vec::new();
        for (name, header) in FILES {
            let path = dir.join(format!("{name}.csv"));
            let mut file = BufWriter::with_capacity(
                1 << 20,
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            );
            writeln!(file, "{header}")?;
            files.push((name, file));
        }
        Ok(CsvFiles { dir: dir.to_path_buf(), files, error: None })
    }

    fn write(&mut self, name: &str, fields: &[&str]) {
        if self.error.is_some() {
            return;
        }
        debug_assert!(fields.iter().all(|f| !f.contains([',', '"', '\n'])), "{fields:?}");
        let (_, file) = self.files.iter_mut().find(|(n, _)| *n == name).expect("a known file");
        if let Err(error) = writeln!(file, "{}", fields.join(",")) {
            self.error = Some(error);
        }
    }

    fn jurisdictions(&mut self, city: &fangkong_sim::city::CityMap) -> anyhow::Result<()> {
        for node in &city.nodes {
            let parent = node.parent.clone().unwrap_or_default();
            let name_en = node.name_en.clone().unwrap_or_default();
            self.write("jurisdictions", &[&node.code, node.kind.as_str(), &parent, &node.name_zh, &name_en]);
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error).with_context(|| format!("writing to {}", self.dir.display()));
        }
        for (name, mut file) in self.files {
            file.flush().with_context(|| format!("writing {name}.csv in {}", self.dir.display()))?;
        }
        Ok(())
    }
}

impl PopulationSink for CsvFiles {
    fn building(&mut self, b: &Building) {
        let (floors, units, lon, lat) =
            (b.floors.to_string(), b.units.to_string(), format!("{:.6}", b.lon), format!("{:.6}", b.lat));
        self.write("buildings", &[&b.id, &b.grid, b.kind.as_str(), &floors, &units, &lon, &lat, &b.address]);
    }
    fn unit(&mut self, u: &Unit) {
        self.write("units", &[&u.id, &u.building, &u.floor.to_string(), if u.rental { "1" } else { "0" }]);
    }
    fn resident(&mut self, r: &Resident) {
        let permit = r.permit_expires_day.map(date).unwrap_or_default();
        let local = if r.local_hukou { "1" } else { "0" };
        self.write(
            "residents",
            &[&r.id, &r.name, sex(r.sex), &date(r.birth_day), &r.id_number, local, &r.unit, &r.grid, &permit],
        );
    }
    fn landlord(&mut self, l: &Landlord) {
        let (resident, company) = (l.resident.clone().unwrap_or_default(), l.company.clone().unwrap_or_default());
        self.write("landlords", &[&l.id, &resident, &company, &l.buildings.join(";")]);
    }
    fn tenancy(&mut self, t: &Tenancy) {
        let landlord = t.landlord.clone().unwrap_or_default();
        let fields = [
            &t.id,
            &t.unit,
            &landlord,
            &t.residents.join(";"),
            &date(t.start_day),
            &t.months.to_string(),
            &t.unregistered.join(";"),
        ];
        self.write("tenancies", &fields.map(String::as_str));
    }
    fn force_unit(&mut self, u: &ForceUnit) {
        self.write("force_units", &[&u.id, &u.station, u.category.as_str(), u.mode.as_str(), &u.beat, &u.call_sign]);
    }
    fn force_member(&mut self, m: &ForceMember) {
        self.write(
            "force_members",
            &[&m.id, &m.unit, m.category.as_str(), &m.name, sex(m.sex), &date(m.birth_day), &m.id_number, &m.device],
        );
    }
    fn place(&mut self, p: &Place) {
        let (lon, lat) = (format!("{:.6}", p.lon), format!("{:.6}", p.lat));
        self.write("places", &[&p.id, p.kind, &p.name, &p.grid, &lon, &lat, &p.capacity.to_string()]);
    }
    fn informant(&mut self, i: &Informant) {
        self.write("informants", &[&i.id, &i.resident, &i.grid, if i.landlord { "1" } else { "0" }]);
    }
}
