use std::path::Path;

use super::*;

fn applied(migration: &Migration) -> AppliedMigration {
    AppliedMigration { version: migration.version, name: migration.name.to_string(), checksum: migration.checksum() }
}

fn file_name(migration: &Migration) -> String {
    format!("{:04}_{}.sql", migration.version, migration.name)
}

#[test]
fn both_backends_have_the_same_contiguous_versions() {
    let versions = |list: &[Migration]| list.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
    assert_eq!(versions(SQLITE), versions(POSTGRES), "each schema change exists for both backends");
    for (index, migration) in SQLITE.iter().enumerate() {
        assert_eq!(migration.version as usize, index + 1, "versions are contiguous from 1");
    }
}

#[test]
fn every_migration_file_is_listed_and_every_listed_one_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
        let mut files: Vec<String> = std::fs::read_dir(root.join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let listed: Vec<String> = list.iter().map(file_name).collect();
        assert_eq!(files, listed, "migrations/{backend}/ and migrate::{} must agree", backend.to_uppercase());
        for migration in list {
            let on_disk = std::fs::read_to_string(root.join(backend).join(file_name(migration))).unwrap();
            assert_eq!(on_disk, migration.sql);
        }
    }
}

#[test]
fn released_migrations_are_never_edited() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let released = std::fs::read_to_string(root.join("released.txt")).unwrap();
    let pinned: Vec<(&str, &str)> = released
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split_once(' ').expect("`path sha256` lines"))
        .collect();
    for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
        for migration in list {
            let path = format!("{backend}/{}", file_name(migration));
            let checksum = migration.checksum();
            match pinned.iter().find(|(p, _)| *p == path) {
                Some((_, pinned_checksum)) => assert_eq!(
                    *pinned_checksum, checksum,
                    "{path} was edited after release; revert it and add a new migration instead"
                ),
                None => panic!("{path} is not in migrations/released.txt; add the line:\n{path} {checksum}"),
            }
        }
    }
}

#[test]
fn a_fresh_database_gets_every_migration() {
    assert_eq!(plan(SQLITE, &[]).unwrap().len(), SQLITE.len());
    assert_eq!(current_version(&[]), 0);
}

#[test]
fn an_up_to_date_database_gets_none() {
    let rows: Vec<_> = SQLITE.iter().map(applied).collect();
    assert!(plan(SQLITE, &rows).unwrap().is_empty());
    assert_eq!(current_version(&rows), SQLITE.len() as u32);
}

#[test]
fn an_edited_migration_is_refused() {
    let mut row = applied(&SQLITE[0]);
    row.checksum = "0".repeat(64);
    let error = plan(SQLITE, &[row]).unwrap_err().to_string();
    assert!(error.contains("0001_foundation") && error.contains("never be edited"), "{error}");
}

#[test]
fn a_database_from_a_newer_binary_is_refused() {
    let mut rows: Vec<_> = SQLITE.iter().map(applied).collect();
    rows.push(AppliedMigration { version: 999, name: "from_the_future".into(), checksum: "ab".into() });
    let error = plan(SQLITE, &rows).unwrap_err().to_string();
    assert!(error.contains("999") && error.contains("newer Fangkong"), "{error}");
}
