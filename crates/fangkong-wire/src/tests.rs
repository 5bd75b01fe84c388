use fangkong_core::auth::account::Session;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::{AcceptedFix, Fix};
use fangkong_core::codes::{CodeEntry, CodeKind};
use fangkong_core::dispatch::{AreaClass, Assignment, Incident, IncidentStatus, UnitState, UnitStatus};
use fangkong_core::event::{AccountSummary, DeviceSummary, Event, SeenHow};
use fangkong_core::forces::{Beat, ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::jurisdiction::{Chain, Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::{Area, LatLon};
use proptest::prelude::*;

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn chain() -> Chain {
    let mut chain = Chain::default();
    chain.set(JurisdictionKind::City, "440300");
    chain.set(JurisdictionKind::District, "440304");
    chain.set(JurisdictionKind::PoliceStation, "PS440304-01");
    chain
}

fn incident(description: &str, caller_phone_masked: Option<String>) -> Incident {
    let mut sent = Assignment::new("CAR1", T0.plus_seconds(30));
    sent.advance(UnitStatus::EnRoute, T0.plus_seconds(40));
    Incident {
        id: 7,
        uid: "0123456789abcdef0123456789abcdef".into(),
        source: "110".into(),
        type_code: "010301".into(),
        priority: 1,
        status: IncidentStatus::EnRoute,
        disposition: None,
        point: LatLon::new(22.5431, 114.0579).unwrap(),
        address: "园岭街道红荔路".into(),
        chain: chain(),
        h3: Some(0x8940_0000_0000_0fff),
        description: description.into(),
        caller_phone_masked,
        possible_duplicates: vec![3, 5],
        merged_into: None,
        area_class: AreaClass::Urban,
        arrival_target_s: 300,
        created_by: "dispatcher".into(),
        created_at: T0,
        updated_at: T0.plus_seconds(40),
        revision: 3,
        dispatched_at: Some(T0.plus_seconds(30)),
        arrived_at: None,
        resolved_at: None,
        closed_at: None,
        assignments: vec![sent, Assignment::new("WALK1", T0.plus_seconds(35))],
    }
}

fn square(lon: f64, lat: f64) -> Area {
    Area::from_rings(vec![vec![vec![
        [lon, lat],
        [lon + 0.01, lat],
        [lon + 0.01, lat + 0.01],
        [lon, lat + 0.01],
        [lon, lat],
    ]]])
    .unwrap()
}

/// One event of every kind (a new kind fails to compile in `kind_of` until it is added).
fn every_kind() -> Vec<Event> {
    let code = CodeEntry {
        kind: CodeKind::IncidentType,
        code: "010301".into(),
        name_zh: "抢劫".into(),
        name_en: "Robbery".into(),
        priority: Some(1),
        active: true,
        updated_at: T0,
    };
    let node = Jurisdiction {
        code: "440304".into(),
        kind: JurisdictionKind::District,
        parent: Some("440300".into()),
        name_zh: "福田区".into(),
        name_en: None,
    };
    let unit = Unit {
        code: "CAR1".into(),
        call_sign: "园岭1".into(),
        station: "PS440304-01".into(),
        category: ForceCategory::Police,
        mode: PatrolMode::Vehicle,
        equipment: vec!["对讲机".into()],
        beat: Some("B1".into()),
        capabilities: vec!["traffic".into()],
    };
    let shift = Shift { unit: "CAR1".into(), beat: "B1".into(), starts_at: T0, ends_at: T0.plus_seconds(28_800) };
    vec![
        Event::CodeCreated(code.clone()),
        Event::CodeUpdated(CodeEntry { priority: None, active: false, ..code }),
        Event::JurisdictionsAdded(vec![node.clone()]),
        Event::JurisdictionsChanged(vec![Jurisdiction { name_en: Some("Futian".into()), ..node }]),
        Event::AccountChanged(AccountSummary {
            user_id: 4,
            username: "disp".into(),
            role: Role::Dispatcher,
            jurisdiction: "440304".into(),
            disabled: false,
            locked_until: Some(T0),
            second_factor: true,
        }),
        Event::SignedIn(Session {
            token_hash: [0x5a; 32],
            user_id: 4,
            created_at: T0,
            last_used_at: T0.plus_seconds(60),
            revoked_at: None,
            ip: Some("10.1.2.3".into()),
        }),
        Event::SignedOut { user_id: 4, token_hash: [0x5a; 32] },
        Event::SessionsEnded { user_id: 4 },
        Event::DeviceChanged(DeviceSummary {
            device_id: 9,
            unique_id: "862118020000001".into(),
            kind: DeviceKind::Tracker,
            unit: Some("CAR1".into()),
            jurisdiction: "440304".into(),
            revoked_at: None,
            last_seen_at: Some(T0),
        }),
        Event::DeviceSeen { unique_id: "AP-1".into(), at: T0 },
        Event::PanicAlarm {
            unique_id: "862118020000001".into(),
            unit: None,
            alarm: "sos".into(),
            lat: 22.55,
            lon: 114.05,
            fixed_at: T0,
            chain: chain(),
        },
        Event::IncidentChanged(Box::new(incident("有人抢包", Some("*******5678".into())))),
        Event::UnitStatusChanged {
            state: UnitState {
                unit: "CAR1".into(),
                status: UnitStatus::Dispatched,
                since: T0,
                incident: Some(7),
                revision: 12,
            },
            station: "PS440304-01".into(),
        },
        Event::UnitOverdue {
            unit: "CAR1".into(),
            station: "PS440304-01".into(),
            status: UnitStatus::OnScene,
            since: T0,
            limit_ms: 3_600_000,
        },
        Event::UnitsSaved(vec![unit.clone(), Unit { beat: None, capabilities: Vec::new(), ..unit }]),
        Event::BeatsSaved(vec![Beat {
            code: "B1".into(),
            station: "PS440304-01".into(),
            name: "园东巡区".into(),
            shape: square(114.0, 22.5),
        }]),
        Event::ShiftsAdded(vec![(1, shift.clone()), (2, shift.clone())]),
        Event::ShiftDeleted { id: 1, shift },
        Event::MemberChanged {
            id: 3,
            category: ForceCategory::Volunteer,
            station: "PS440304-01".into(),
            unit: None,
            active: false,
        },
        Event::PersonSeen {
            person: [0xab; 16],
            how: SeenHow::TenancyBegan,
            record: "T1".into(),
            community: "440304001001".into(),
        },
        Event::RegistryChanged {
            entity: "tenancy".into(),
            code: "T1".into(),
            community: "440304001001".into(),
            change: "moved_in".into(),
        },
        Event::AreaClassChanged { code: "440304001".into(), class: Some(AreaClass::Suburban) },
        Event::FixesAccepted(vec![
            AcceptedFix {
                device_id: 9,
                unique_id: "862118020000001".into(),
                unit: Some("CAR1".into()),
                received_at: T0.plus_seconds(1),
                fix: Fix {
                    speed_mps: Some(8.5),
                    course_deg: Some(271.0),
                    battery_pct: Some(64.0),
                    alarm: Some("sos".into()),
                    attributes: vec![("ignition".into(), "true".into())],
                    ..Fix::new(T0, LatLon::new(22.5431, 114.0579).unwrap())
                },
                chain: chain(),
                h3: Some(0x8940_0000_0000_0000),
            },
            AcceptedFix {
                device_id: 10,
                unique_id: "862118020000002".into(),
                unit: None,
                received_at: T0.plus_seconds(2),
                fix: Fix { valid: false, ..Fix::new(T0, LatLon::new(22.6, 114.1).unwrap()) },
                chain: Chain::default(),
                h3: None,
            },
        ]),
    ]
}

/// Exhaustive over the kinds: a kind added to `Event` must be added here, and to
/// `every_kind`, before this compiles and passes.
fn kind_of(event: &Event) -> usize {
    match event {
        Event::CodeCreated(_) => 0,
        Event::CodeUpdated(_) => 1,
        Event::JurisdictionsAdded(_) => 2,
        Event::JurisdictionsChanged(_) => 3,
        Event::AccountChanged(_) => 4,
        Event::SignedIn { .. } => 5,
        Event::SignedOut { .. } => 6,
        Event::SessionsEnded { .. } => 7,
        Event::DeviceChanged(_) => 8,
        Event::DeviceSeen { .. } => 9,
        Event::PanicAlarm { .. } => 10,
        Event::IncidentChanged(_) => 11,
        Event::UnitStatusChanged { .. } => 12,
        Event::UnitOverdue { .. } => 13,
        Event::UnitsSaved(_) => 14,
        Event::BeatsSaved(_) => 15,
        Event::ShiftsAdded(_) => 16,
        Event::ShiftDeleted { .. } => 17,
        Event::MemberChanged { .. } => 18,
        Event::PersonSeen { .. } => 19,
        Event::RegistryChanged { .. } => 20,
        Event::AreaClassChanged { .. } => 21,
        Event::FixesAccepted(_) => 22,
    }
}

#[test]
fn every_kind_of_event_comes_back_as_it_went() {
    let events = every_kind();
    let mut kinds: Vec<usize> = events.iter().map(kind_of).collect();
    kinds.dedup();
    assert_eq!(kinds, (0..=22).collect::<Vec<_>>(), "one event of every kind, in order");
    for event in events {
        let bytes = encode(&event);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(&format!("\"event\":\"{}\"", event.name())), "named as the bus names it: {text}");
        assert!(text.contains("\"v\":1"), "{text}");
        assert_eq!(decode(&bytes), Ok(event));
    }
}

#[test]
fn a_newer_version_or_a_foreign_object_is_refused_never_misread() {
    let mut value: serde_json::Value = serde_json::from_slice(&encode(&Event::SessionsEnded { user_id: 1 })).unwrap();
    value["v"] = 2.into();
    let newer = serde_json::to_vec(&value).unwrap();
    assert_eq!(decode(&newer), Err(WireError::NewerVersion { found: 2 }));
    for foreign in [
        &b"not json"[..],
        br#"{"event":"session.ended_all","user_id":1}"#,
        br#"{"v":1,"event":"no.such.event"}"#,
        br#"{"v":1,"event":"session.ended_all"}"#,
        br#"{"v":1,"event":"session.signed_out","user_id":1,"token_hash":5}"#,
        br#"[1,2]"#,
    ] {
        assert!(matches!(decode(foreign), Err(WireError::Malformed(_))), "{}", String::from_utf8_lossy(foreign));
    }
    // Well-formed JSON with a value the core refuses.
    let bad = br#"{"v":1,"event":"unit.overdue","unit":"U","station":"S","status":"asleep","since":0,"limit_ms":1}"#;
    assert!(matches!(decode(bad), Err(WireError::Invalid { field: "status", .. })));
    let short = br#"{"v":1,"event":"session.signed_out","user_id":1,"token_hash":"abcd"}"#;
    assert!(matches!(decode(short), Err(WireError::Invalid { field: "token_hash", .. })));
}

proptest! {
    /// A new incident encoded before its id is known reads back as the incident with it.
    #[test]
    fn a_new_incident_gets_its_id_written_in(
        description in any::<String>(),
        id in 1i64..i64::MAX,
    ) {
        let new = incident(&description, Some("*******5678".into()));
        let bytes = NewIncidentEvent::new(&new).with_id(id);
        prop_assert_eq!(decode(&bytes), Ok(Event::IncidentChanged(Box::new(Incident { id, ..new }))));
    }

    /// Whatever people typed (any text, any phone mask), an incident comes back whole.
    #[test]
    fn any_incident_comes_back_whole(
        description in any::<String>(),
        phone in proptest::option::of("[*]{0,7}[0-9]{4}"),
        revision in 1i64..i64::MAX,
        h3 in proptest::option::of(0u64..(1 << 63)),
    ) {
        let mut incident = incident(&description, phone);
        incident.revision = revision;
        incident.h3 = h3;
        let event = Event::IncidentChanged(Box::new(incident));
        prop_assert_eq!(decode(&encode(&event)), Ok(event));
    }

    /// Any bytes at all are decoded to an event or refused, never a panic.
    #[test]
    fn any_bytes_are_decoded_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }
}
