use fangkong_core::codes::{CodeEntry, CodeKind};

use super::*;

fn event(n: u32) -> Event {
    Event::CodeCreated(CodeEntry {
        kind: CodeKind::Disposition,
        code: format!("d{n}"),
        name_zh: "名".into(),
        name_en: "name".into(),
        priority: None,
        active: true,
        updated_at: Timestamp::from_millis(n.into()),
    })
}

fn seqs(envelopes: &[Arc<Envelope>]) -> Vec<u64> {
    envelopes.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn subscribers_receive_in_sequence_order() {
    let bus = InProcessBus::default();
    let mut receiver = bus.subscribe();
    for n in 1..=3 {
        assert_eq!(bus.publish(Timestamp::from_millis(n), event(n as u32)).seq, n as u64);
    }
    for n in 1..=3 {
        let envelope = receiver.recv().await.unwrap();
        assert_eq!((envelope.seq, envelope.event.clone()), (n, event(n as u32)));
    }
    assert_eq!(bus.stats(), BusStats { published: 3, subscribers: 1, lagged: 0 });
}

#[tokio::test]
async fn concurrent_publishers_deliver_in_sequence_order() {
    let bus = Arc::new(InProcessBus::default());
    let mut receiver = bus.subscribe();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in 0..100 {
                    bus.publish(Timestamp::UNIX_EPOCH, event(t * 1000 + n));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for expected in 1..=800 {
        assert_eq!(receiver.recv().await.unwrap().seq, expected);
    }
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_continues_live() {
    let bus = InProcessBus::new(5, 16);
    for n in 1..=4 {
        bus.publish(Timestamp::UNIX_EPOCH, event(n));
    }
    let mut resumed = bus.resume(2).unwrap();
    assert_eq!(seqs(&resumed.missed), [3, 4]);
    bus.publish(Timestamp::UNIX_EPOCH, event(5));
    assert_eq!(resumed.live.recv().await.unwrap().seq, 5);

    // Up to date: nothing missed.
    assert!(bus.resume(5).unwrap().missed.is_empty());
    // A fresh subscriber from the beginning, while the beginning is still held.
    assert_eq!(seqs(&bus.resume(0).unwrap().missed), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn resume_from_too_far_back_asks_for_a_reload() {
    let bus = InProcessBus::new(3, 16);
    for n in 1..=10 {
        bus.publish(Timestamp::UNIX_EPOCH, event(n));
    }
    // Held: 8, 9, 10. Resuming after 7 is complete; after 6 would miss 7.
    assert_eq!(seqs(&bus.resume(7).unwrap().missed), [8, 9, 10]);
    assert_eq!(bus.resume(6).unwrap_err(), CannotResume { requested: 6, oldest_held: 8, last_seq: 10 });
    assert_eq!(bus.resume(0).unwrap_err(), CannotResume { requested: 0, oldest_held: 8, last_seq: 10 });
}

#[tokio::test]
async fn resume_from_a_sequence_this_bus_never_issued_asks_for_a_reload() {
    // A console that was connected before a server restart holds a sequence from the old bus.
    let bus = InProcessBus::default();
    bus.publish(Timestamp::UNIX_EPOCH, event(1));
    assert!(bus.resume(500).is_err());
    assert!(bus.resume(1).is_ok());
}

#[tokio::test]
async fn a_bus_without_replay_still_resumes_when_nothing_was_missed() {
    let bus = InProcessBus::new(0, 16);
    bus.publish(Timestamp::UNIX_EPOCH, event(1));
    assert!(bus.resume(1).unwrap().missed.is_empty());
    assert!(bus.resume(0).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// `resume_after` comes from the client's query string, so any u64 may arrive: resuming
    /// either hands back exactly the envelopes after it (none of them dropped) or refuses,
    /// and never panics.
    #[test]
    fn any_resume_point_replays_exactly_or_refuses(
        capacity in 0usize..20,
        published in 0u64..60,
        after in proptest::prop_oneof![0u64..80, proptest::prelude::any::<u64>(), proptest::strategy::Just(u64::MAX)],
    ) {
        let bus = InProcessBus::new(capacity, 16);
        for n in 1..=published {
            bus.publish(Timestamp::from_millis(n as i64), event(n as u32));
        }
        let oldest_held = published.saturating_sub(capacity as u64) + 1;
        match bus.resume(after) {
            Ok(resumed) => {
                proptest::prop_assert!(after <= published);
                proptest::prop_assert!(after + 1 >= oldest_held || after == published);
                let want: Vec<u64> = (after + 1..=published).collect();
                proptest::prop_assert_eq!(seqs(&resumed.missed), want);
            }
            Err(refused) => {
                proptest::prop_assert!(after > published || after + 1 < oldest_held);
                proptest::prop_assert_eq!(refused.last_seq, published);
            }
        }
    }
}
