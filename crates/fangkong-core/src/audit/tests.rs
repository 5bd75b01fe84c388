use super::*;

const KEY: [u8; 32] = [42; 32];

fn entry(n: i64) -> AuditEntry {
    let mut entry =
        AuditEntry::new(Timestamp::from_millis(1_000 * n), &Actor::Anonymous, "auth.login", Outcome::Failed);
    entry.actor_name = format!("user{n}");
    entry.ip = Some("10.0.0.1".into());
    entry
}

fn chain(n: i64) -> Vec<AuditRecord> {
    let mut records = Vec::new();
    let (mut seq, mut hash) = (0, GENESIS);
    for i in 1..=n {
        let record = seal_entry(&KEY, seq, &hash, entry(i));
        (seq, hash) = (record.seq, record.hash);
        records.push(record);
    }
    records
}

/// Verifies `records` against the genuine head `head` of an untouched chain.
fn verify(records: &[AuditRecord], seal: Option<&Seal>, head: i64) -> Result<u64, Broken> {
    let mut verifier = ChainVerifier::new(&KEY, seal)?;
    for record in records {
        verifier.check(record)?;
    }
    let head_hash = chain(head).last().map_or(GENESIS, |r| r.hash);
    verifier.finish(head, &head_hash, &head_tag(&KEY, head, &head_hash))?;
    Ok(verifier.checked())
}

#[test]
fn an_untouched_chain_verifies() {
    assert_eq!(verify(&chain(10), None, 10), Ok(10));
    assert_eq!(verify(&[], None, 0), Ok(0));
}

#[test]
fn an_altered_field_is_found_at_its_record() {
    for field in 0..5 {
        let mut records = chain(10);
        let target = &mut records[4].entry;
        match field {
            0 => target.actor_name = "someone else".into(),
            1 => target.outcome = Outcome::Allowed,
            2 => target.ip = None,
            3 => target.at = Timestamp::from_millis(0),
            _ => target.purpose = Some("curiosity".into()),
        }
        assert_eq!(verify(&records, None, 10), Err(Broken::Altered { seq: 5 }), "field {field}");
    }
}

#[test]
fn a_deleted_record_is_found() {
    let mut records = chain(10);
    records.remove(6);
    assert_eq!(verify(&records, None, 10), Err(Broken::Missing { expected: 7, found: 8 }));
    assert_eq!(Broken::Missing { expected: 7, found: 8 }.record(), Some(7));
}

#[test]
fn reordered_records_are_found() {
    // Swapping two rows' numbers puts record 4's content in position 3.
    let mut records = chain(10);
    records.swap(2, 3);
    records[2].seq = 3;
    records[3].seq = 4;
    assert_eq!(verify(&records, None, 10), Err(Broken::Relinked { seq: 3, previous: 2 }));
}

#[test]
fn a_renumbered_record_is_found() {
    let mut records = chain(5);
    records.remove(4);
    records[3].seq = 5;
    assert!(matches!(verify(&records, None, 5), Err(Broken::Missing { expected: 4, .. })));
}

#[test]
fn a_truncated_tail_is_found_against_the_head() {
    let records = chain(10);
    assert_eq!(verify(&records[..8], None, 10), Err(Broken::Truncated { last: 8, expected: 10 }));
}

#[test]
fn a_head_moved_back_without_the_key_is_found() {
    // Records 9 and 10 deleted and the head pointed at record 8 with a tag forged without the key.
    let records = chain(10);
    let mut verifier = ChainVerifier::new(&KEY, None).unwrap();
    for record in &records[..8] {
        verifier.check(record).unwrap();
    }
    let forged = head_tag(&[0u8; 32], 8, &records[7].hash);
    assert_eq!(verifier.finish(8, &records[7].hash, &forged), Err(Broken::HeadAltered { seq: 8 }));
    assert_eq!(verifier.finish(8, &records[7].hash, &head_tag(&KEY, 8, &records[7].hash)), Ok(()));
    let wrong_hash = head_tag(&KEY, 8, &records[6].hash);
    assert_eq!(verifier.finish(8, &records[6].hash, &wrong_hash), Err(Broken::HeadAltered { seq: 8 }));
}

#[test]
fn a_forged_record_without_the_key_is_found() {
    let mut records = chain(5);
    let forged = seal_entry(&[0u8; 32], 2, &records[1].hash, entry(99));
    records[2] = forged;
    assert_eq!(verify(&records, None, 5), Err(Broken::Altered { seq: 3 }));
}

#[test]
fn verification_resumes_after_a_seal() {
    let records = chain(10);
    let seal = Seal::new(&KEY, 6, records[5].hash, Timestamp::from_millis(99), 6);
    assert_eq!(verify(&records[6..], Some(&seal), 10), Ok(4));
    // Deleting the first record after the seal is found.
    assert!(matches!(verify(&records[7..], Some(&seal), 10), Err(Broken::Missing { expected: 7, .. })));
    // A seal moved to hide more records is found.
    let mut moved = seal.clone();
    moved.through_seq = 7;
    assert_eq!(verify(&records[7..], Some(&moved), 10), Err(Broken::Seal));
}
