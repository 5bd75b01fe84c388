//! Every parameter form of the OsmAnd protocol, the JSON form, and bad values.

use super::*;

const NOW: Timestamp = Timestamp::from_millis(1_764_288_000_000); // 2025-11-28T00:00:00Z

fn one(query: &str) -> Report {
    let reports = parse_request(Some(query), b"", NOW).unwrap_or_else(|e| panic!("{query}: {e}"));
    assert_eq!(reports.len(), 1);
    reports.into_iter().next().unwrap()
}

fn refused(query: Option<&str>, body: &str) -> ReportError {
    parse_request(query, body.as_bytes(), NOW).expect_err("should be refused")
}

#[test]
fn the_query_string_form_with_every_parameter() {
    let report =
        one("id=862118020000001&lat=22.5431&lon=114.0579&timestamp=1764288000&speed=10&bearing=90.5&altitude=12.5\
         &accuracy=8&hdop=0.9&batt=87&valid=true&alarm=SOS&driverUniqueId=A123&ignition=true");
    assert_eq!(report.device, "862118020000001");
    let fix = &report.fix;
    assert_eq!((fix.point.lat(), fix.point.lon()), (22.5431, 114.0579));
    assert_eq!(fix.fixed_at, NOW);
    assert!((fix.speed_mps.unwrap() - 5.144_444).abs() < 1e-5, "10 knots in m/s");
    assert_eq!((fix.course_deg, fix.altitude_m, fix.accuracy_m), (Some(90.5), Some(12.5), Some(8.0)));
    assert_eq!((fix.hdop, fix.battery_pct, fix.valid), (Some(0.9), Some(87.0), true));
    assert_eq!(fix.alarm.as_deref(), Some("sos"));
    assert!(fix.is_panic());
    assert_eq!(
        fix.attributes,
        vec![("driverUniqueId".to_string(), "A123".to_string()), ("ignition".to_string(), "true".to_string())]
    );
}

#[test]
fn alternative_names_and_forms() {
    let report = one("deviceid=T9&location=22.5,114.1&heading=45");
    assert_eq!(report.device, "T9");
    assert_eq!((report.fix.point.lat(), report.fix.point.lon()), (22.5, 114.1));
    assert_eq!(report.fix.course_deg, Some(45.0));
    assert_eq!(report.fix.fixed_at, NOW, "no timestamp: the time of receipt");
    assert!(!one("id=T&lat=1&lon=1&valid=0").fix.valid);
    assert!(!one("id=T&lat=1&lon=1&valid=false").fix.valid);
}

#[test]
fn timestamps_in_every_form() {
    let at = |value: &str| one(&format!("id=T&lat=1&lon=1&timestamp={value}")).fix.fixed_at;
    assert_eq!(at("1764288000"), NOW, "Unix seconds");
    assert_eq!(at("1764288000123"), NOW.plus_millis(123), "Unix milliseconds");
    assert_eq!(at("1764288000.5"), NOW.plus_millis(500), "fractional seconds");
    assert_eq!(at("2025-11-28T00:00:00Z"), NOW, "ISO 8601, UTC");
    assert_eq!(at("2025-11-28T08:00:00%2B08:00"), NOW, "ISO 8601 with an offset (+ encoded)");
    assert_eq!(at("2025-11-28T00:00:00.250Z"), NOW.plus_millis(250));
    assert_eq!(at("2025-11-28T00:00:00"), NOW, "ISO 8601 without an offset: UTC");
    assert_eq!(at("2025-11-28%2000:00:00"), NOW, "yyyy-MM-dd HH:mm:ss");
    assert_eq!(at("2025-11-28+00:00:00"), NOW, "the space as + in a query");
}

#[test]
fn the_form_body_when_the_query_is_empty() {
    let reports = parse_request(None, b"id=T2&lat=22.6&lon=114.2&speed=0", NOW).unwrap();
    assert_eq!(reports[0].device, "T2");
    assert_eq!(reports[0].fix.speed_mps, Some(0.0));
    let reports = parse_request(Some(""), b"id=T2&lat=22.6&lon=114.2", NOW).unwrap();
    assert_eq!(reports[0].device, "T2");
}

#[test]
fn the_json_form_of_newer_clients() {
    let body = r#"{
      "device_id": "T3",
      "location": {
        "timestamp": "2025-11-28T00:00:10.000Z",
        "coords": {"latitude": 22.55, "longitude": 114.06, "speed": 4.2, "heading": 180, "altitude": 30, "accuracy": 5},
        "is_moving": true, "odometer": 1234.5, "event": "motionchange",
        "battery": {"level": 0.64, "is_charging": false},
        "activity": {"type": "on_foot"},
        "extras": {"alarm": "SOS", "shift": "night"}
      }
    }"#;
    let reports = parse_request(None, body.as_bytes(), NOW).unwrap();
    let fix = &reports[0].fix;
    assert_eq!(reports[0].device, "T3");
    assert_eq!(fix.fixed_at, NOW.plus_seconds(10));
    assert_eq!(
        (fix.speed_mps, fix.course_deg, fix.altitude_m, fix.accuracy_m),
        (Some(4.2), Some(180.0), Some(30.0), Some(5.0))
    );
    assert_eq!(fix.battery_pct, Some(64.0));
    assert_eq!(fix.alarm.as_deref(), Some("sos"));
    let attributes: Vec<&str> = fix.attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(attributes, ["charge", "is_moving", "odometer", "event", "activity", "shift"]);

    // A batch of fixes; unknown speed and heading (-1) are left out.
    let batch = r#"{"device_id": 42, "location": [
        {"timestamp": 1764288000, "coords": {"latitude": 22.5, "longitude": 114.0, "speed": -1, "heading": -1}},
        {"coords": {"latitude": 22.6, "longitude": 114.1}}
    ]}"#;
    let reports = parse_request(None, batch.as_bytes(), NOW).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].device, "42");
    assert_eq!((reports[0].fix.speed_mps, reports[0].fix.course_deg), (None, None));
    assert_eq!(reports[1].fix.fixed_at, NOW);

    // A flat object with the query-string keys (what MQTT trackers send).
    let flat = r#"{"id": "T4", "lat": 22.5, "lon": 114.0, "timestamp": 1764288000, "speed": 20}"#;
    let reports = parse_request(None, flat.as_bytes(), NOW).unwrap();
    assert_eq!(reports[0].device, "T4");
    assert!((reports[0].fix.speed_mps.unwrap() - 20.0 * MPS_PER_KNOT).abs() < 1e-9);
}

#[test]
fn bad_values_are_refused_naming_the_parameter() {
    let cases: &[(Option<&str>, &str, &str)] = &[
        (Some("lat=1&lon=1"), "", "id"),
        (Some("id=&lat=1&lon=1"), "", "id"),
        (Some("id=T&lat=1"), "", "lat"),
        (Some("id=T&lat=abc&lon=1"), "", "lat"),
        (Some("id=T&lat=91&lon=1"), "", "lat"),
        (Some("id=T&lat=1&lon=181"), "", "lon"),
        (Some("id=T&lat=NaN&lon=1"), "", "lat"),
        (Some("id=T&location=22.5"), "", "location"),
        (Some("id=T&lat=1&lon=1&timestamp=yesterday"), "", "timestamp"),
        (Some("id=T&lat=1&lon=1&timestamp=-5"), "", "timestamp"),
        (Some("id=T&lat=1&lon=1&speed=-3"), "", "speed"),
        (Some("id=T&lat=1&lon=1&bearing=400"), "", "bearing"),
        (Some("id=T&lat=1&lon=1&batt=150"), "", "batt"),
        (Some("id=T&lat=1&lon=1&valid=maybe"), "", "valid"),
        (None, "", "id"),
        (None, "{not json", "body"),
        (None, "[1, 2]", "body"),
        (None, r#"{"location": {"coords": {"latitude": 1, "longitude": 1}}}"#, "device_id"),
        (None, r#"{"device_id": "T", "location": {"coords": {"latitude": 1}}}"#, "longitude"),
        (None, r#"{"device_id": "T", "location": {"coords": {"latitude": "x", "longitude": 1}}}"#, "latitude"),
        (None, r#"{"device_id": "T", "location": 5}"#, "location"),
        (
            None,
            r#"{"device_id": "T", "location": {"timestamp": "soon", "coords": {"latitude": 1, "longitude": 1}}}"#,
            "timestamp",
        ),
    ];
    for (query, body, field) in cases {
        let error = refused(*query, body);
        assert_eq!(&error.field, field, "{query:?} {body:?}: {error}");
        assert!(!error.message.is_empty());
    }
}

/// Property tests: the receiver reads whatever a device, or anyone on the network, sends.
mod properties {
    use proptest::prelude::*;

    use super::*;

    const KEYS: &[&str] = &[
        "id",
        "deviceid",
        "lat",
        "lon",
        "location",
        "timestamp",
        "speed",
        "bearing",
        "heading",
        "altitude",
        "accuracy",
        "hdop",
        "batt",
        "valid",
        "alarm",
        "",
        "x",
        "driverUniqueId",
    ];

    /// Values near what the parameters expect: numbers of every size and sign, dates,
    /// booleans, and arbitrary text.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_map(|n| n.to_string()),
            (-200.0f64..200.0).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("2025-11-28T00:00:00Z".to_string()),
            Just("2025-11-28 00:00:00".to_string()),
            Just("9999-12-31T23:59:59.999999999+23:59".to_string()),
            Just("true".to_string()),
            "[0-9.,+-eE]{0,12}",
            any::<String>(),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..10)
            .prop_map(|pairs| form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish())
    }

    /// What every accepted report must be, whatever it came from.
    fn sound(reports: &[Report]) -> Result<(), TestCaseError> {
        for report in reports {
            prop_assert!(!report.device.trim().is_empty());
            let point = report.fix.point;
            prop_assert!(point.lat().abs() <= 90.0 && point.lon().abs() <= 180.0);
            for value in [report.fix.speed_mps, report.fix.course_deg, report.fix.accuracy_m, report.fix.battery_pct] {
                prop_assert!(value.is_none_or(|v| v.is_finite() && v >= 0.0));
            }
            prop_assert!(report.fix.attributes.iter().all(|(_, v)| v.chars().count() <= 256));
            // Every accepted time can be written back out.
            let _ = crate::api::rfc3339(report.fix.fixed_at);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        #[test]
        fn any_query_string_is_a_report_or_a_named_refusal(query in query()) {
            match parse_request(Some(&query), b"", NOW) {
                Ok(reports) => sound(&reports)?,
                Err(error) => prop_assert!(!error.field.is_empty() && !error.message.is_empty()),
            }
        }

        #[test]
        fn any_body_is_a_report_or_a_named_refusal(
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                query().prop_map(String::into_bytes),
                "[{}\\[\\]\",:0-9a-z .-]{0,80}".prop_map(String::into_bytes),
            ]
        ) {
            match parse_request(None, &body, NOW) {
                Ok(reports) => sound(&reports)?,
                Err(error) => prop_assert!(!error.field.is_empty() && !error.message.is_empty()),
            }
        }

        #[test]
        fn any_json_location_is_a_report_or_a_named_refusal(
            lat in prop_oneof![any::<f64>(), -90.0f64..90.0],
            lon in prop_oneof![any::<f64>(), -180.0f64..180.0],
            speed in any::<f64>(),
            level in any::<f64>(),
            timestamp in value(),
            extras in proptest::collection::hash_map("[a-z]{1,8}", any::<String>(), 0..40),
        ) {
            let body = serde_json::json!({
                "device_id": "862118020000001",
                "location": {"timestamp": timestamp, "coords": {"latitude": lat, "longitude": lon, "speed": speed},
                             "battery": {"level": level}, "extras": extras},
            });
            match parse_request(None, body.to_string().as_bytes(), NOW) {
                Ok(reports) => {
                    sound(&reports)?;
                    prop_assert!(reports[0].fix.attributes.len() <= 32 + 1);
                }
                Err(error) => prop_assert!(!error.field.is_empty()),
            }
        }

        /// A sound report reads the same whichever of the three forms carries it.
        #[test]
        fn the_three_forms_agree(
            device in "[0-9A-Za-z]{1,20}",
            lat in -90.0f64..90.0,
            lon in -180.0f64..180.0,
            seconds in 0i64..2_000_000_000,
        ) {
            let pairs = [("id", device.clone()), ("lat", lat.to_string()), ("lon", lon.to_string()),
                         ("timestamp", seconds.to_string())];
            let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let from_query = parse_request(Some(&query), b"", NOW).expect("a sound query");
            let from_form = parse_request(None, query.as_bytes(), NOW).expect("a sound form");
            let json = serde_json::json!({"device_id": device, "location": {"timestamp": seconds,
                "coords": {"latitude": lat, "longitude": lon}}});
            let from_json = parse_request(None, json.to_string().as_bytes(), NOW).expect("a sound JSON body");
            prop_assert_eq!(&from_query, &from_form);
            prop_assert_eq!((&from_query[0].device, from_query[0].fix.point, from_query[0].fix.fixed_at),
                            (&from_json[0].device, from_json[0].fix.point, from_json[0].fix.fixed_at));
            prop_assert_eq!(from_query[0].fix.fixed_at, Timestamp::from_millis(seconds * 1000));
        }
    }
}
