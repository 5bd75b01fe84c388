//! The registry's lookup keys on SQLite, kept in hash buckets instead of B-tree indexes.
//!
//! Residents are found by keys that are looked up, never ranged over: the blind index of
//! their identity number (unique) and of their phone, made by the engine, and a hash of
//! their name within their community, made here. As B-tree indexes these cost every
//! imported resident a random descent per key — at a city's scale, a page read once the
//! index outgrows the cache; measured, the import ran at ~20,000 residents/s. Here a key's
//! bucket is its kind and its first [`BUCKET_BITS`] bits; the bucket's row in
//! `registry_keys` holds its entries (key ‖ the resident's rowid) sorted, ~76 per kind at
//! 20 M residents. A lookup reads one row; a registration rewrites one or two buckets of
//! ~2 KB; an import collects its keys, sorts them and writes each bucket once
//! ([`PendingKeys`]).
//!
//! The buckets are the only index of these keys, so every write of a resident goes through
//! [`replace`] or [`PendingKeys`], and the identity number's uniqueness is checked here.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// A lookup key: a blind index, or a name's hash.
pub(super) type Key = [u8; 16];

/// Bits of a key that choose its bucket: 2^18 buckets per kind, ~76 entries (1.8 KB) each
/// at 20 M residents. Migration 0010 went from 2^20 to 2^18: an import writes each bucket as
/// one row, and at 20 M residents the 3 × 2^20 rows of ~20 entries took 8.4 s of the writer
/// (the bytes are the same either way; the rows were the cost). A registration rewrites a
/// bucket of 1.8 KB instead of 480 bytes.
const BUCKET_BITS: u32 = 18;
/// Bytes of an entry: the key and the rowid (little-endian).
const ENTRY_BYTES: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    IdNumber = 1,
    Phone = 2,
    Name = 3,
}

impl KeyKind {
    const ALL: [KeyKind; 3] = [KeyKind::IdNumber, KeyKind::Phone, KeyKind::Name];

    fn bucket(self, key: &Key) -> i64 {
        let top = u32::from_be_bytes([0, key[0], key[1], key[2]]) >> (24 - BUCKET_BITS);
        ((self as i64) << BUCKET_BITS) | i64::from(top)
    }

    /// Whether a key of this kind belongs to one resident only.
    fn unique(self) -> bool {
        self == KeyKind::IdNumber
    }
}

/// One entry of a bucket. Ordered by key, then rowid, as entries are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    pub key: Key,
    pub rowid: i64,
}

/// The key of a name within a community.
pub(super) fn name_key(community: &str, name: &str) -> Key {
    let digest = Sha256::new()
        .chain_update(b"registry-name:")
        .chain_update(community.as_bytes())
        .chain_update([0u8])
        .chain_update(name.as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The keys a resident is found by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ResidentKeys {
    pub id_number: Key,
    pub phone: Option<Key>,
    pub name: Key,
}

impl ResidentKeys {
    pub(super) fn new(id_number: Key, phone: Option<Key>, community: &str, name: &str) -> ResidentKeys {
        ResidentKeys { id_number, phone, name: name_key(community, name) }
    }

    fn get(&self, kind: KeyKind) -> Option<Key> {
        match kind {
            KeyKind::IdNumber => Some(self.id_number),
            KeyKind::Phone => self.phone,
            KeyKind::Name => Some(self.name),
        }
    }
}

/// Two residents hold a key that only one may hold: `rowid` is the one being written.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Clash {
    pub rowid: i64,
}

fn decode(blob: &[u8]) -> Result<Vec<Entry>, StoreError> {
    if !blob.len().is_multiple_of(ENTRY_BYTES) {
        return Err(StoreError::Corrupt(format!("registry: a key bucket of {} bytes", blob.len())));
    }
    Ok(blob.chunks_exact(ENTRY_BYTES).map(entry_at).collect())
}

fn entry_at(chunk: &[u8]) -> Entry {
    let mut key = [0u8; 16];
    key.copy_from_slice(&chunk[..16]);
    let mut rowid = [0u8; 8];
    rowid.copy_from_slice(&chunk[16..ENTRY_BYTES]);
    Entry { key, rowid: i64::from_le_bytes(rowid) }
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    encode_into(&mut blob, entries);
    blob
}

/// `entries` (sorted) into `blob`, the same entry twice only once, as [`merge`] files them.
fn encode_into(blob: &mut Vec<u8>, entries: &[Entry]) {
    blob.clear();
    let mut last = None;
    for entry in entries {
        if last != Some(entry) {
            blob.extend_from_slice(&entry.key);
            blob.extend_from_slice(&entry.rowid.to_le_bytes());
            last = Some(entry);
        }
    }
}

fn read_bucket(conn: &Connection, bucket: i64) -> Result<Vec<Entry>, StoreError> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT entries FROM registry_keys WHERE bucket = ?1")?
        .query_row([bucket], |r| r.get(0))
        .optional()?;
    blob.map_or(Ok(Vec::new()), |b| decode(&b))
}

fn write_bucket(conn: &Connection, bucket: i64, entries: &[Entry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        conn.prepare_cached("DELETE FROM registry_keys WHERE bucket = ?1")?.execute([bucket])?;
    } else {
        conn.prepare_cached("INSERT OR REPLACE INTO registry_keys (bucket, entries) VALUES (?1, ?2)")?
            .execute(params![bucket, encode(entries)])?;
    }
    Ok(())
}

/// The rowids filed under `key`, in order. Reads one row and decodes nothing but the
/// matching entries.
pub(super) fn lookup(conn: &Connection, kind: KeyKind, key: &Key) -> Result<Vec<i64>, StoreError> {
    let found = conn
        .prepare_cached("SELECT entries FROM registry_keys WHERE bucket = ?1")?
        .query_row([kind.bucket(key)], |r| {
            let blob = r.get_ref(0)?.as_blob()?;
            if !blob.len().is_multiple_of(ENTRY_BYTES) {
                return Ok(None);
            }
            let entries: Vec<&[u8]> = blob.chunks_exact(ENTRY_BYTES).collect();
            let first = entries.partition_point(|chunk| chunk[..16] < key[..]);
            Ok(Some(
                entries[first..].iter().take_while(|chunk| chunk[..16] == key[..]).map(|c| entry_at(c).rowid).collect(),
            ))
        })
        .optional()?;
    match found {
        Some(Some(rowids)) => Ok(rowids),
        Some(None) => Err(StoreError::Corrupt("registry: a key bucket of a broken length".into())),
        None => Ok(Vec::new()),
    }
}

/// `existing` without `removed`, with `added` (all sorted); for a unique kind, the first
/// key held by two residents is a [`Clash`] naming the added one.
fn merge(existing: Vec<Entry>, removed: &[Entry], added: &[Entry], unique: bool) -> Result<Vec<Entry>, Clash> {
    let mut merged: Vec<Entry> = Vec::with_capacity(existing.len() + added.len());
    let mut kept = existing.into_iter().filter(|e| removed.binary_search(e).is_err()).peekable();
    let mut new = added.iter().copied().peekable();
    loop {
        let next = match (kept.peek(), new.peek()) {
            (Some(k), Some(n)) if k <= n => kept.next(),
            (Some(_), Some(_)) | (None, Some(_)) => new.next(),
            (Some(_), None) => kept.next(),
            (None, None) => break,
        };
        let Some(next) = next else { break };
        match merged.last() {
            Some(last) if *last == next => continue,
            Some(last) if unique && last.key == next.key => {
                let rowid = if added.binary_search(&next).is_ok() { next.rowid } else { last.rowid };
                return Err(Clash { rowid });
            }
            _ => merged.push(next),
        }
    }
    Ok(merged)
}

/// Files one resident's keys in place of `old` (what they were filed under before, if
/// anything): for a registration or a change of one resident.
pub(super) fn replace(
    conn: &Connection,
    rowid: i64,
    old: Option<&ResidentKeys>,
    new: &ResidentKeys,
) -> Result<Result<(), Clash>, StoreError> {
    for kind in KeyKind::ALL {
        let (old_key, new_key) = (old.and_then(|o| o.get(kind)), new.get(kind));
        if old_key == new_key {
            continue;
        }
        let removed = old_key.map(|key| (kind.bucket(&key), Entry { key, rowid }));
        let added = new_key.map(|key| (kind.bucket(&key), Entry { key, rowid }));
        let mut buckets: Vec<i64> = removed.iter().chain(added.iter()).map(|(b, _)| *b).collect();
        buckets.dedup();
        for bucket in buckets {
            let pick = |change: Option<(i64, Entry)>| change.filter(|(b, _)| *b == bucket).map(|(_, e)| e);
            let (gone, come) = (pick(removed), pick(added));
            let existing = read_bucket(conn, bucket)?;
            match merge(existing, gone.as_slice(), come.as_slice(), kind.unique()) {
                Ok(merged) => write_bucket(conn, bucket, &merged)?,
                Err(clash) => return Ok(Err(clash)),
            }
        }
    }
    Ok(Ok(()))
}

/// The keys an import collects, filed when it ends: sorted, then each bucket read (unless
/// the registry had no keys), merged and written once.
///
/// Keys added are kept in [`PARTS`] parts by their first byte (a part is 4,096 consecutive
/// buckets), so that filing can sort one part on another thread while the writer writes the
/// buckets of the part before: at 20 M residents the sort of 60 M entries then costs the
/// writer nothing but the first part.
#[derive(Debug)]
pub(super) struct PendingKeys {
    /// By kind, then by the key's first byte.
    added: [Vec<Vec<Entry>>; 3],
    /// Keys filed before the import that no longer hold.
    removed: [Vec<Entry>; 3],
    /// Keys added earlier in this import that no longer hold (a resident on two rows: the
    /// later row wins).
    retracted: [Vec<Entry>; 3],
}

/// Parts of the keys added of each kind: one for each value of a key's first byte.
const PARTS: usize = 256;

impl Default for PendingKeys {
    fn default() -> PendingKeys {
        PendingKeys {
            added: std::array::from_fn(|_| vec![Vec::new(); PARTS]),
            removed: Default::default(),
            retracted: Default::default(),
        }
    }
}

impl PendingKeys {
    fn push(lists: &mut [Vec<Entry>; 3], rowid: i64, keys: &ResidentKeys) {
        for (i, kind) in KeyKind::ALL.into_iter().enumerate() {
            if let Some(key) = keys.get(kind) {
                lists[i].push(Entry { key, rowid });
            }
        }
    }

    pub(super) fn add(&mut self, rowid: i64, keys: &ResidentKeys) {
        for (i, kind) in KeyKind::ALL.into_iter().enumerate() {
            if let Some(key) = keys.get(kind) {
                self.added[i][usize::from(key[0])].push(Entry { key, rowid });
            }
        }
    }

    /// These keys and `other`'s together.
    pub(super) fn join(mut self, other: PendingKeys) -> PendingKeys {
        let PendingKeys { added, removed, retracted } = other;
        for (mine, theirs) in self.added.iter_mut().zip(added) {
            for (part, more) in mine.iter_mut().zip(theirs) {
                part.extend(more);
            }
        }
        for (mine, theirs) in self.removed.iter_mut().zip(removed).chain(self.retracted.iter_mut().zip(retracted)) {
            mine.extend(theirs);
        }
        self
    }

    /// Keys a resident registered before the import was filed under.
    pub(super) fn remove(&mut self, rowid: i64, keys: &ResidentKeys) {
        Self::push(&mut self.removed, rowid, keys);
    }

    /// Keys added earlier in this import.
    pub(super) fn retract(&mut self, rowid: i64, keys: &ResidentKeys) {
        Self::push(&mut self.retracted, rowid, keys);
    }

    /// Files everything collected: a thread sorts the parts in bucket order while this one
    /// writes the buckets of each part it is handed (the import's reading thread has
    /// finished by now, so the sorting thread gets the other core).
    pub(super) fn file(self, conn: &Connection) -> Result<Result<(), Clash>, StoreError> {
        let PendingKeys { added, mut removed, mut retracted } = self;
        for list in removed.iter_mut().chain(retracted.iter_mut()) {
            list.sort_unstable();
        }
        let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM registry_keys)", [], |r| r.get(0))?;
        // Into an empty table every bucket is new: a plain insert, in rowid order (each
        // one appends), of the entries as they are, with no bucket to read and merge.
        let mut insert = conn.prepare("INSERT INTO registry_keys (bucket, entries) VALUES (?1, ?2)")?;
        let mut blob = Vec::new();
        std::thread::scope(|scope| {
            let (parts, sorted) = std::sync::mpsc::sync_channel::<(usize, usize, Vec<Entry>)>(4);
            let retracted = &retracted;
            scope.spawn(move || {
                for (i, kind_parts) in added.into_iter().enumerate() {
                    for (first, mut part) in kind_parts.into_iter().enumerate() {
                        part.sort_unstable();
                        let less = in_part(&retracted[i], first);
                        if !less.is_empty() {
                            part = subtract(part, less);
                        }
                        // The writer stopped (a clash or an error): nothing more to sort.
                        if parts.send((i, first, part)).is_err() {
                            return;
                        }
                    }
                }
            });
            for (i, first, added) in sorted {
                let kind = KeyKind::ALL[i];
                let removed = in_part(&removed[i], first);
                if let Err(clash) = file_part(conn, &mut insert, &mut blob, kind, empty, &added, removed)? {
                    return Ok(Err(clash));
                }
            }
            Ok(Ok(()))
        })
    }
}

/// Files one part of a kind's keys, bucket by bucket: `added` and `removed` sorted, `empty`
/// when the key table held nothing before (each bucket is then inserted as it is).
fn file_part(
    conn: &Connection,
    insert: &mut rusqlite::Statement<'_>,
    blob: &mut Vec<u8>,
    kind: KeyKind,
    empty: bool,
    added: &[Entry],
    removed: &[Entry],
) -> Result<Result<(), Clash>, StoreError> {
    let (mut a, mut r) = (0, 0);
    while a < added.len() || r < removed.len() {
        let bucket = match (added.get(a), removed.get(r)) {
            (Some(x), Some(y)) => kind.bucket(&x.key).min(kind.bucket(&y.key)),
            (Some(x), None) => kind.bucket(&x.key),
            (None, Some(y)) => kind.bucket(&y.key),
            (None, None) => break,
        };
        // A bucket's entries are a short run (~76 at a city's scale): walked, not
        // binary-searched over the rest of the part.
        let in_bucket = |e: &Entry| kind.bucket(&e.key) == bucket;
        let a_end = a + added[a..].iter().take_while(|e| in_bucket(e)).count();
        let r_end = r + removed[r..].iter().take_while(|e| in_bucket(e)).count();
        let new = &added[a..a_end];
        let clash_free = || !kind.unique() || new.windows(2).all(|pair| pair[0].key != pair[1].key);
        if empty && r == r_end && clash_free() {
            encode_into(blob, new);
            insert.execute(params![bucket, &*blob])?;
        } else {
            let existing = if empty { Vec::new() } else { read_bucket(conn, bucket)? };
            match merge(existing, &removed[r..r_end], new, kind.unique()) {
                Ok(merged) => write_bucket(conn, bucket, &merged)?,
                Err(clash) => return Ok(Err(clash)),
            }
        }
        (a, r) = (a_end, r_end);
    }
    Ok(Ok(()))
}

/// The entries of a sorted list whose key starts with the byte `first`.
fn in_part(sorted: &[Entry], first: usize) -> &[Entry] {
    let start = sorted.partition_point(|e| usize::from(e.key[0]) < first);
    let end = start + sorted[start..].partition_point(|e| usize::from(e.key[0]) == first);
    &sorted[start..end]
}

/// `from` less one copy of each entry of `less` (both sorted).
fn subtract(from: Vec<Entry>, less: &[Entry]) -> Vec<Entry> {
    let mut less = less.iter().peekable();
    let mut kept = Vec::with_capacity(from.len());
    for entry in from {
        while less.next_if(|l| **l < entry).is_some() {}
        if less.next_if(|l| **l == entry).is_none() {
            kept.push(entry);
        }
    }
    kept
}

/// Files the keys of every resident on the registry anew (after the migration that made
/// the buckets, or to repair them).
pub(super) fn rebuild(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("DELETE FROM registry_keys", [])?;
    let mut pending = PendingKeys::default();
    let mut statement = conn.prepare("SELECT id, id_index, phone_index, community, name FROM registry_residents")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id_index: Vec<u8> = row.get(1)?;
        let phone_index: Option<Vec<u8>> = row.get(2)?;
        let keys = ResidentKeys::new(
            crate::registry::blind_index(&id_index)?,
            phone_index.as_deref().map(crate::registry::blind_index).transpose()?,
            &row.get::<_, String>(3)?,
            &row.get::<_, String>(4)?,
        );
        pending.add(row.get(0)?, &keys);
    }
    match pending.file(conn)? {
        Ok(()) => Ok(()),
        Err(clash) => Err(StoreError::Corrupt(format!("registry: resident {} shares an identity index", clash.rowid))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first: u8, rowid: i64) -> Entry {
        Entry { key: [first; 16], rowid }
    }

    #[test]
    fn merging_removes_adds_and_finds_a_key_held_twice() {
        let existing = vec![entry(1, 10), entry(2, 20), entry(3, 30)];
        let merged = merge(existing.clone(), &[entry(2, 20)], &[entry(2, 21), entry(4, 40)], true).unwrap();
        assert_eq!(merged, vec![entry(1, 10), entry(2, 21), entry(3, 30), entry(4, 40)]);
        // The same entry again is no change; another resident with the same key clashes.
        assert_eq!(merge(existing.clone(), &[], &[entry(3, 30)], true).unwrap(), existing);
        assert_eq!(merge(existing.clone(), &[], &[entry(3, 31)], true), Err(Clash { rowid: 31 }));
        assert_eq!(merge(existing.clone(), &[], &[entry(0, 5), entry(0, 6)], true), Err(Clash { rowid: 6 }));
        // Keys that are not unique (phones, names) keep both.
        assert_eq!(merge(existing, &[], &[entry(3, 31)], false).unwrap().len(), 4);
    }

    #[test]
    fn a_retraction_takes_back_one_addition() {
        let added = vec![entry(1, 1), entry(2, 1), entry(2, 1), entry(3, 1)];
        assert_eq!(subtract(added, &[entry(0, 1), entry(2, 1), entry(3, 1)]), vec![entry(1, 1), entry(2, 1)]);
    }

    #[test]
    fn filing_into_no_keys_at_all_is_filing_by_merging() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE registry_keys (bucket INTEGER PRIMARY KEY, entries BLOB NOT NULL)").unwrap();
        let keys = |id: u8, phone: Option<u8>| ResidentKeys {
            id_number: [id; 16],
            phone: phone.map(|p| [p; 16]),
            name: [9; 16],
        };
        let mut pending = PendingKeys::default();
        pending.add(1, &keys(1, Some(5)));
        pending.add(2, &keys(2, Some(5)));
        // The same entries twice (filed once), and an entry added then taken back.
        pending.add(2, &keys(2, Some(5)));
        pending.add(4, &keys(4, None));
        pending.retract(4, &keys(4, None));
        assert_eq!(pending.file(&conn).unwrap(), Ok(()));
        assert_eq!(lookup(&conn, KeyKind::IdNumber, &[2; 16]).unwrap(), [2]);
        assert_eq!(lookup(&conn, KeyKind::IdNumber, &[4; 16]).unwrap(), [0i64; 0]);
        assert_eq!(lookup(&conn, KeyKind::Phone, &[5; 16]).unwrap(), [1, 2]);
        assert_eq!(lookup(&conn, KeyKind::Name, &[9; 16]).unwrap(), [1, 2]);
        let blob: Vec<u8> = conn
            .query_row("SELECT entries FROM registry_keys WHERE bucket = ?1", [KeyKind::Name.bucket(&[9; 16])], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(decode(&blob).unwrap(), [Entry { key: [9; 16], rowid: 1 }, Entry { key: [9; 16], rowid: 2 }]);

        // Two residents holding one identity number: the later one clashes.
        conn.execute("DELETE FROM registry_keys", []).unwrap();
        let mut pending = PendingKeys::default();
        pending.add(1, &keys(1, None));
        pending.add(3, &keys(1, None));
        assert_eq!(pending.file(&conn).unwrap(), Err(Clash { rowid: 3 }));
    }

    #[test]
    fn entries_round_trip_and_buckets_follow_the_first_bits() {
        let entries = vec![entry(1, -1), entry(9, i64::MAX)];
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        assert!(decode(&[0; 23]).is_err());
        let mut key = [0u8; 16];
        key[..3].copy_from_slice(&[0xff, 0xff, 0xf0]);
        assert_eq!(KeyKind::Phone.bucket(&key), (2 << BUCKET_BITS) | 0x3ffff);
        assert_ne!(name_key("C1", "张伟"), name_key("C2", "张伟"));
    }
}
