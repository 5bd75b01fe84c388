//! Tracker history: batches of fixes and refused fixes, track queries by device and time,
//! retention.

use fangkong_core::avl::{Fix, Rejection};
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_store::{Presence, RejectedFix, StoredFix};

use crate::support::TestDb;

conformance!(
    fixes_round_trip_every_field_in_time_order,
    track_queries_take_a_half_open_range_and_a_limit,
    a_fix_stored_twice_is_kept_once,
    refused_fixes_come_back_newest_first_with_their_reasons,
    retention_deletes_only_older_fixes_of_the_device,
    presence_minutes_merge_by_or_and_are_read_by_beat_and_hour,
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn fix(device_id: i64, seconds: i64) -> StoredFix {
    let point = LatLon::new(22.5 + seconds as f64 * 1e-5, 114.05).unwrap();
    StoredFix {
        device_id,
        received_at: T0.plus_seconds(seconds + 1),
        h3: None,
        fix: Fix::new(T0.plus_seconds(seconds), point),
    }
}

fn full(device_id: i64, seconds: i64) -> StoredFix {
    let mut stored = fix(device_id, seconds);
    stored.h3 = Some(0x0894_11ca_a05b_ffff);
    let fix = &mut stored.fix;
    fix.speed_mps = Some(12.5);
    fix.course_deg = Some(271.0);
    fix.altitude_m = Some(35.2);
    fix.accuracy_m = Some(8.0);
    fix.hdop = Some(0.9);
    fix.battery_pct = Some(87.0);
    fix.alarm = Some("sos".into());
    fix.attributes = vec![("driverUniqueId".into(), "A123".into()), ("ignition".into(), "true".into())];
    stored
}

async fn fixes_round_trip_every_field_in_time_order(db: &TestDb) {
    let batch = vec![full(7, 30), fix(7, 10), fix(7, 20), fix(8, 15)];
    assert_eq!(db.store.write_positions(batch, Vec::new(), Default::default()).await.unwrap(), 4);
    let track = db.store.track(7, T0, T0.plus_seconds(3_600), 100).await.unwrap();
    assert_eq!(track, vec![fix(7, 10), fix(7, 20), full(7, 30)]);
}

async fn track_queries_take_a_half_open_range_and_a_limit(db: &TestDb) {
    let batch: Vec<StoredFix> = (0..100).map(|s| fix(3, s * 10)).collect();
    assert_eq!(db.store.write_positions(batch, Vec::new(), Default::default()).await.unwrap(), 100);
    let range = db.store.track(3, T0.plus_seconds(100), T0.plus_seconds(200), 1_000).await.unwrap();
    let seconds: Vec<i64> = range.iter().map(|f| (f.fix.fixed_at.as_millis() - T0.as_millis()) / 1000).collect();
    assert_eq!(seconds, (10..20).map(|s| s * 10).collect::<Vec<_>>());
    assert_eq!(db.store.track(3, T0, T0.plus_seconds(10_000), 5).await.unwrap().len(), 5);
    assert!(db.store.track(4, T0, T0.plus_seconds(10_000), 5).await.unwrap().is_empty());
}

async fn a_fix_stored_twice_is_kept_once(db: &TestDb) {
    assert_eq!(db.store.write_positions(vec![fix(1, 0), fix(1, 1)], Vec::new(), Default::default()).await.unwrap(), 2);
    assert_eq!(db.store.write_positions(vec![fix(1, 1), fix(1, 2)], Vec::new(), Default::default()).await.unwrap(), 1);
    assert_eq!(db.store.track(1, T0, T0.plus_seconds(60), 100).await.unwrap().len(), 3);
}

fn refused(seconds: i64, reason: Rejection) -> RejectedFix {
    RejectedFix {
        device_id: 9,
        received_at: T0.plus_seconds(seconds),
        fixed_at: T0.plus_seconds(seconds - 5),
        point: LatLon::new(0.0, 0.0).unwrap(),
        reason,
    }
}

async fn refused_fixes_come_back_newest_first_with_their_reasons(db: &TestDb) {
    let batch = vec![
        refused(10, Rejection::NullIsland),
        refused(20, Rejection::ImpossibleSpeed),
        refused(30, Rejection::OutOfOrder),
    ];
    db.store.write_positions(vec![fix(9, 1)], batch, Default::default()).await.unwrap();
    let back = db.store.rejections(9, T0, T0.plus_seconds(60), 10).await.unwrap();
    let reasons: Vec<Rejection> = back.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [Rejection::OutOfOrder, Rejection::ImpossibleSpeed, Rejection::NullIsland]);
    assert_eq!(back[2], refused(10, Rejection::NullIsland));
}

async fn retention_deletes_only_older_fixes_of_the_device(db: &TestDb) {
    let batch: Vec<StoredFix> = (0..10).map(|s| fix(5, s)).chain((0..10).map(|s| fix(6, s))).collect();
    db.store.write_positions(batch, vec![refused(2, Rejection::Duplicate)], Default::default()).await.unwrap();
    assert_eq!(db.store.purge_positions(5, T0.plus_seconds(4)).await.unwrap(), 4);
    assert_eq!(db.store.track(5, T0, T0.plus_seconds(60), 100).await.unwrap().len(), 6);
    assert_eq!(db.store.track(6, T0, T0.plus_seconds(60), 100).await.unwrap().len(), 10, "other devices keep theirs");
    assert_eq!(db.store.purge_positions(9, T0.plus_seconds(60)).await.unwrap(), 1, "refused fixes too");
}

async fn presence_minutes_merge_by_or_and_are_read_by_beat_and_hour(db: &TestDb) {
    let row = |beat: &str, unit: &str, hour: i64, minutes: u64| Presence {
        beat: beat.into(),
        unit: unit.into(),
        hour: T0.plus_seconds(hour * 3_600),
        minutes,
    };
    db.store.record_presence(vec![row("B1", "U1", 0, 0b0011), row("B2", "U1", 0, 1 << 59)]).await.unwrap();
    // A later batch adds minutes; it never takes any away.
    db.store.record_presence(vec![row("B1", "U1", 0, 0b0110), row("B1", "U2", 1, 1)]).await.unwrap();
    db.store.record_presence(Vec::new()).await.unwrap();
    let mut found = db.store.presence(vec!["B1".into()], T0, T0.plus_seconds(7_200)).await.unwrap();
    found.sort_by_key(|p| (p.hour, p.unit.clone()));
    assert_eq!(found, vec![row("B1", "U1", 0, 0b0111), row("B1", "U2", 1, 1)]);
    // The range is half-open, by the hour's start.
    let first_hour = db.store.presence(vec!["B1".into(), "B2".into()], T0, T0.plus_seconds(3_600)).await.unwrap();
    assert_eq!(first_hour.len(), 2);
    // Minute 60 does not exist: the database refuses it and nothing of the batch is kept.
    assert!(db.store.record_presence(vec![row("B3", "U1", 0, 1), row("B3", "U2", 0, 1 << 60)]).await.is_err());
    assert!(db.store.presence(vec!["B3".into()], T0, T0.plus_seconds(3_600)).await.unwrap().is_empty());
    assert_eq!(db.store.purge_presence(T0.plus_seconds(3_600)).await.unwrap(), 2);
    assert_eq!(db.store.presence(vec!["B1".into()], T0, T0.plus_seconds(7_200)).await.unwrap().len(), 1);
}
