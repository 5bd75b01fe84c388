//! `fangkong bench geo`: point → full jurisdiction chain, on the full-scale synthetic
//! Shenzhen (~10,000 grids, ~110 police stations, ~790 police districts), single thread.
//!
//! Ours: [`Atlas::locate`], the in-memory lookup the engine uses (district → sub-district →
//! community → grid, and district → police station → police district), with and without
//! the H3 cell the engine adds to every located record.
//!
//! The peer, in the same run when a PostgreSQL URL is given, set up two ways: as an expert
//! would (only the two leaf layers searched — grids and police districts — their shapes cut
//! by `ST_Subdivide` to 256 vertices, GiST, and each leaf's ancestors from a table: the
//! headline), and plainly: every layer's whole shapes
//! (`geometry(MultiPolygon, 4326)`, GiST index), asked `ST_Contains(geom, point)`
//! for the same points — once as a spatial join of all points inside the server (no
//! round trips), and once as one query per point over a connection, as an application
//! would ask. (Until issue 35 only the plain setup ran, and this comment called it the most
//! favourable way to run PostGIS; the leaf layers subdivided are 3–4× faster.)
//! The run also checks that PostGIS and the atlas name the same nodes for a sample of
//! points, and reports the disagreements (expected: 0).

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use fangkong_core::jurisdiction::{Atlas, JurisdictionKind, JurisdictionTree, Placement};
use fangkong_geo::{Area, BBox, LatLon};
use fangkong_sim::city::{CityOptions, shenzhen};

use crate::report::{Better, Figure, median};

const BENCH: &str = "geo";
const PEER_JOIN: &str = "postgis, every layer (ST_Contains + GiST, one spatial join in the server)";
const PEER_QUERY: &str = "postgis, every layer (ST_Contains + GiST, one query per point)";
const EXPERT_JOIN: &str = "postgis as an expert sets it up: the two leaf layers (grids, police districts) \
     ST_Subdivide'd to 256 vertices with GiST, ancestors from a table (one spatial join in the server)";
const EXPERT_QUERY: &str =
    "postgis as an expert sets it up: leaf layers subdivided, ancestors from a table (one query per point)";

#[derive(Clone, Debug)]
pub struct GeoBenchOptions {
    /// PostgreSQL with the PostGIS extension available; the bench works in a schema of
    /// its own and drops it afterwards.
    pub postgres_url: Option<String>,
    pub rounds: usize,
    /// Points looked up per round.
    pub points: usize,
    /// Points asked one query at a time (round trips are slow; fewer suffice).
    pub query_points: usize,
    /// Points whose chains are compared between the atlas and PostGIS.
    pub verify_points: usize,
    pub seed: u64,
}

impl Default for GeoBenchOptions {
    fn default() -> GeoBenchOptions {
        GeoBenchOptions {
            postgres_url: None,
            rounds: 5,
            points: 200_000,
            query_points: 5_000,
            verify_points: 5_000,
            seed: 2003,
        }
    }
}

impl GeoBenchOptions {
    /// Every code path, no meaningful figures (for smoke tests).
    pub fn quick() -> GeoBenchOptions {
        GeoBenchOptions {
            rounds: 1,
            points: 2_000,
            query_points: 100,
            verify_points: 300,
            ..GeoBenchOptions::default()
        }
    }
}

/// The full-scale city, its atlas and the points to look up (all inside the city).
struct Setup {
    tree: JurisdictionTree,
    shapes: HashMap<String, Area>,
    atlas: Atlas,
    points: Vec<LatLon>,
}

/// SplitMix64: a tiny deterministic generator (the bench needs reproducible points, not
/// cryptographic ones).
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn setup(options: &GeoBenchOptions) -> anyhow::Result<Setup> {
    let city = shenzhen(&CityOptions { seed: options.seed, ..CityOptions::default() });
    let tree = JurisdictionTree::from_nodes(city.nodes).context("the generated tree")?;
    let shapes: HashMap<String, Area> = city.areas.into_iter().collect();
    let atlas = Atlas::new(&tree, shapes.clone());
    let bbox = shapes
        .iter()
        .filter(|(code, _)| tree.get(code).is_some_and(|n| n.kind == JurisdictionKind::District))
        .fold(BBox::EMPTY, |bbox, (_, area)| bbox.union(area.bbox()));
    // Uniform over the city's land: sample its box, keep the points some district holds.
    let mut random = SplitMix(options.seed);
    let mut points = Vec::with_capacity(options.points);
    while points.len() < options.points {
        let lon = bbox.min_lon + random.next_f64() * (bbox.max_lon - bbox.min_lon);
        let lat = bbox.min_lat + random.next_f64() * (bbox.max_lat - bbox.min_lat);
        let point = LatLon::new(lat, lon).context("a sampled point")?;
        if atlas.locate(point).is_some() {
            points.push(point);
        }
    }
    Ok(Setup { tree, shapes, atlas, points })
}

/// Lookups per second over `points`, the median of `rounds`.
fn rate(rounds: usize, points: &[LatLon], lookup: impl Fn(LatLon) -> bool) -> f64 {
    let rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let mut found = 0usize;
            for &point in points {
                found += usize::from(lookup(black_box(point)));
            }
            black_box(found);
            points.len() as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    median(&rates)
}

pub async fn run(options: &GeoBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let setup = setup(options)?;
    let grids = setup.tree.iter().filter(|n| n.kind == JurisdictionKind::Grid).count();
    Figure::new(BENCH, "grids", grids as f64, "grids", Better::Higher).print(out)?;
    Figure::new(BENCH, "shapes", setup.shapes.len() as f64, "areas", Better::Higher).print(out)?;
    Figure::new(BENCH, "setup", started.elapsed().as_secs_f64() * 1000.0, "ms", Better::Lower).print(out)?;

    let ours = rate(options.rounds, &setup.points, |p| setup.atlas.place(p).is_some_and(|c| full(&c)));
    let with_h3 = rate(options.rounds, &setup.points, |p| {
        setup.atlas.place(p).is_some_and(|c| full(&c)) && p.h3_cell(9).is_some()
    });
    let named = rate(options.rounds, &setup.points, |p| setup.atlas.locate(p).is_some());

    let Some(url) = &options.postgres_url else {
        Figure::new(BENCH, "point_to_chain", ours, "lookups/s", Better::Higher).print(out)?;
        Figure::new(BENCH, "point_to_chain_and_h3", with_h3, "lookups/s", Better::Higher).print(out)?;
        Figure::new(BENCH, "point_to_named_chain", named, "lookups/s", Better::Higher).print(out)?;
        return Ok(());
    };
    let peer = crate::report::on_own_thread(postgis(url, &setup, options))?;
    // The headline peer is PostGIS as an expert sets it up; the plain setup is printed too.
    Figure::new(BENCH, "point_to_chain", ours, "lookups/s", Better::Higher)
        .with_peer(EXPERT_JOIN, peer.expert_join_rate)
        .print(out)?;
    Figure::new(BENCH, "point_to_chain_per_query", ours, "lookups/s", Better::Higher)
        .with_peer(EXPERT_QUERY, peer.expert_query_rate)
        .print(out)?;
    Figure::new(BENCH, "point_to_chain_vs_every_layer", ours, "lookups/s", Better::Higher)
        .with_peer(PEER_JOIN, peer.join_rate)
        .print(out)?;
    Figure::new(BENCH, "point_to_chain_per_query_vs_every_layer", ours, "lookups/s", Better::Higher)
        .with_peer(PEER_QUERY, peer.query_rate)
        .print(out)?;
    Figure::new(BENCH, "chain_mismatches_leaf_layers", peer.expert_mismatches as f64, "points", Better::Lower)
        .print(out)?;
    Figure::new(BENCH, "point_to_chain_and_h3", with_h3, "lookups/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "point_to_named_chain", named, "lookups/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "chains_compared", peer.compared as f64, "points", Better::Higher).print(out)?;
    Figure::new(BENCH, "chain_mismatches", peer.mismatches as f64, "points", Better::Lower).print(out)?;
    Ok(())
}

/// Whether the chain reaches the bottom of both hierarchies.
fn full(chain: &Placement<'_>) -> bool {
    chain.get(JurisdictionKind::Grid).is_some() && chain.get(JurisdictionKind::PoliceDistrict).is_some()
}

struct PeerFigures {
    join_rate: f64,
    query_rate: f64,
    compared: usize,
    mismatches: usize,
    expert_join_rate: f64,
    expert_query_rate: f64,
    expert_mismatches: usize,
}

async fn postgis(url: &str, setup: &Setup, options: &GeoBenchOptions) -> anyhow::Result<PeerFigures> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", fangkong_store::redact_url(url)))?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
        .await
        .context("PostGIS is not available in this PostgreSQL (Debian: apt-get install postgresql-15-postgis-3)")?;
    let schema = format!("fangkong_bench_geo_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}, public;
             CREATE TABLE areas (code text PRIMARY KEY, kind text NOT NULL, geom geometry(MultiPolygon, 4326) NOT NULL);
             CREATE TABLE points (id integer PRIMARY KEY, geom geometry(Point, 4326) NOT NULL);"
        ))
        .await?;
    let result = measure_postgis(&client, setup, options).await;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    drop(client);
    connection.await.ok();
    result
}

async fn measure_postgis(
    client: &tokio_postgres::Client,
    setup: &Setup,
    options: &GeoBenchOptions,
) -> anyhow::Result<PeerFigures> {
    // The same shapes, as the same WKB the store keeps.
    let insert = client.prepare("INSERT INTO areas VALUES ($1, $2, ST_GeomFromWKB($3, 4326))").await?;
    for (code, area) in &setup.shapes {
        let kind = setup.tree.get(code).map_or("", |n| n.kind.as_str());
        client.execute(&insert, &[code, &kind, &area.to_wkb()]).await?;
    }
    let (ids, lons, lats): (Vec<i32>, Vec<f64>, Vec<f64>) =
        setup.points.iter().enumerate().map(|(i, p)| (i as i32, p.lon(), p.lat())).fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut ids, mut lons, mut lats), (i, lon, lat)| {
                ids.push(i);
                lons.push(lon);
                lats.push(lat);
                (ids, lons, lats)
            },
        );
    client
        .execute(
            "INSERT INTO points SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)
             FROM unnest($1::int[], $2::float8[], $3::float8[]) AS t(id, lon, lat)",
            &[&ids, &lons, &lats],
        )
        .await?;
    client.batch_execute("CREATE INDEX areas_geom ON areas USING gist (geom); ANALYZE areas; ANALYZE points;").await?;

    // Every point against every shape holding it: six rows per point (the full chain).
    let join = client.prepare("SELECT count(*) FROM points p JOIN areas a ON ST_Contains(a.geom, p.geom)").await?;
    let mut join_rates = Vec::new();
    for _ in 0..options.rounds {
        let started = Instant::now();
        let rows: i64 = client.query_one(&join, &[]).await?.get(0);
        join_rates.push(setup.points.len() as f64 / started.elapsed().as_secs_f64());
        anyhow::ensure!(rows as usize >= setup.points.len() * 6, "PostGIS found {rows} containments");
    }

    let one = client
        .prepare("SELECT kind, code FROM areas WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))")
        .await?;
    let asked = &setup.points[..options.query_points.min(setup.points.len())];
    let mut query_rates = Vec::new();
    for _ in 0..options.rounds {
        let started = Instant::now();
        for point in asked {
            black_box(client.query(&one, &[&point.lon(), &point.lat()]).await?);
        }
        query_rates.push(asked.len() as f64 / started.elapsed().as_secs_f64());
    }

    // Same answers? The atlas's chain against the set of nodes PostGIS says contain the
    // point (the city itself has no shape in the generated tree).
    let checked = &setup.points[..options.verify_points.min(setup.points.len())];
    let mismatches = chain_mismatches(client, &one, setup, checked).await?;
    // As an expert would set PostGIS up for this question: only the two leaf layers are
    // searched (their ancestors name the rest of the chain, as the atlas does), their
    // shapes cut by ST_Subdivide so each index hit tests a small polygon, and each leaf's
    // chain (itself and its ancestors below the city) in a plain table.
    let grid = JurisdictionKind::Grid.as_str();
    let police_district = JurisdictionKind::PoliceDistrict.as_str();
    client
        .batch_execute(&format!(
            "CREATE TABLE leaves AS SELECT code, ST_Subdivide(geom, 256) AS geom FROM areas
                 WHERE kind IN ('{grid}', '{police_district}');
             CREATE INDEX leaves_geom ON leaves USING gist (geom);
             CREATE TABLE ancestors (leaf text NOT NULL, kind text NOT NULL, code text NOT NULL);"
        ))
        .await?;
    let (mut leaf_codes, mut kinds, mut codes) = (Vec::new(), Vec::new(), Vec::new());
    for node in
        setup.tree.iter().filter(|n| n.kind == JurisdictionKind::Grid || n.kind == JurisdictionKind::PoliceDistrict)
    {
        let mut at = Some(node);
        while let Some(current) = at.filter(|n| n.kind != JurisdictionKind::City) {
            leaf_codes.push(node.code.clone());
            kinds.push(current.kind.as_str().to_string());
            codes.push(current.code.clone());
            at = current.parent.as_deref().and_then(|p| setup.tree.get(p));
        }
    }
    client
        .execute(
            "INSERT INTO ancestors SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
            &[&leaf_codes, &kinds, &codes],
        )
        .await?;
    client.batch_execute("CREATE INDEX ancestors_leaf ON ancestors (leaf); ANALYZE leaves; ANALYZE ancestors;").await?;
    let join = client
        .prepare(
            "SELECT count(*) FROM points p JOIN leaves l ON ST_Contains(l.geom, p.geom) JOIN ancestors a ON a.leaf = l.code",
        )
        .await?;
    let mut expert_join_rates = Vec::new();
    for _ in 0..options.rounds {
        let started = Instant::now();
        let rows: i64 = client.query_one(&join, &[]).await?.get(0);
        expert_join_rates.push(setup.points.len() as f64 / started.elapsed().as_secs_f64());
        anyhow::ensure!(rows as usize >= setup.points.len() * 5, "PostGIS (leaf layers) found {rows} chain rows");
    }
    let one = client
        .prepare(
            "SELECT a.kind, a.code FROM leaves l JOIN ancestors a ON a.leaf = l.code
             WHERE ST_Contains(l.geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))",
        )
        .await?;
    let mut expert_query_rates = Vec::new();
    for _ in 0..options.rounds {
        let started = Instant::now();
        for point in asked {
            black_box(client.query(&one, &[&point.lon(), &point.lat()]).await?);
        }
        expert_query_rates.push(asked.len() as f64 / started.elapsed().as_secs_f64());
    }
    let expert_mismatches = chain_mismatches(client, &one, setup, checked).await?;
    Ok(PeerFigures {
        join_rate: median(&join_rates),
        query_rate: median(&query_rates),
        compared: checked.len(),
        mismatches,
        expert_join_rate: median(&expert_join_rates),
        expert_query_rate: median(&expert_query_rates),
        expert_mismatches,
    })
}

/// Points of `checked` where the (kind, code) rows `statement` gives for the point differ
/// from the atlas's chain (the city itself has no shape in the generated tree; a district
/// reached by both hierarchies counts once).
async fn chain_mismatches(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    setup: &Setup,
    checked: &[LatLon],
) -> anyhow::Result<usize> {
    let mut mismatches = 0;
    for &point in checked {
        let rows = client.query(statement, &[&point.lon(), &point.lat()]).await?;
        let mut theirs: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        theirs.sort();
        theirs.dedup();
        let chain = setup.atlas.locate(point).unwrap_or_default();
        let mut ours: Vec<(String, String)> = JurisdictionKind::ALL
            .into_iter()
            .filter(|&kind| kind != JurisdictionKind::City)
            .filter_map(|kind| chain.get(kind).map(|code| (kind.as_str().to_string(), code.to_string())))
            .collect();
        ours.sort();
        mismatches += usize::from(ours != theirs);
    }
    Ok(mismatches)
}
