//! The native operations against a real `redis-server` (started per test on a free
//! loopback port): compare-and-set and compare-and-delete keyed on the revision,
//! sealing at rest, TTLs, the lease and its watchdog, waiters woken by pub/sub, and a
//! Redis that is stopped, killed and restarted.

use crate::lease::LeaseOutcome;
use crate::redis_server::RedisServer;
use crate::store::{Keys, Outcome};
use crate::{FleetEvent, RedisConfig, RedisFleet, Sealer, SealingKey};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn sealer() -> Sealer {
    Sealer::new(SealingKey::new("k1", &[7; 32]).unwrap(), []).unwrap()
}

fn fleet(server: &RedisServer, config: impl FnOnce(RedisConfig) -> RedisConfig) -> Arc<RedisFleet> {
    RedisFleet::connect(config(RedisConfig::single(server.url()).key_prefix("t")), sealer()).unwrap()
}

/// Waits (bounded) until the fleet's subscription is live: a published message arrives.
async fn subscribed(fleet: &RedisFleet, keys: &Keys) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut messages = fleet.link.bus().subscribe();
        let probe = format!("released {}", keys.lease);
        let _: Result<i64, _> = fleet
            .link
            .query(redis::cmd("PUBLISH").arg(fleet.link.bus_channel()).arg(probe))
            .await;
        if tokio::time::timeout(Duration::from_millis(200), messages.recv())
            .await
            .is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the fleet channel never delivered");
    }
}

#[tokio::test]
async fn compare_and_set_and_delete_are_fenced_by_the_revision() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server, |c| c);
    let keys = fleet.records.keys("identity-a");
    let records = &fleet.records;
    let revision_of = |outcome: Outcome| match outcome {
        Outcome::Done(revision) => Ok(revision),
        Outcome::Conflict(current) => Err(current.map(|c| (c.revision, c.value.to_vec()))),
    };

    assert!(records.get(&keys).await.unwrap().is_none());
    assert_eq!(
        revision_of(records.compare_and_set(&keys, None, b"one", None).await.unwrap()),
        Ok(1)
    );
    // A creator that saw nothing, and a writer that read no such revision, are fenced.
    assert_eq!(
        revision_of(records.compare_and_set(&keys, None, b"stale", None).await.unwrap()),
        Err(Some((1, b"one".to_vec())))
    );
    assert_eq!(
        revision_of(records.compare_and_set(&keys, Some(7), b"stale", None).await.unwrap()),
        Err(Some((1, b"one".to_vec())))
    );
    assert_eq!(
        revision_of(records.compare_and_set(&keys, Some(1), b"two", None).await.unwrap()),
        Ok(2)
    );
    let stored = records.get(&keys).await.unwrap().unwrap();
    assert_eq!((stored.revision, stored.value.to_vec()), (2, b"two".to_vec()));

    // Compare-and-delete: the wrong revision removes nothing; the right one removes.
    assert_eq!(
        revision_of(records.compare_and_delete(&keys, 1).await.unwrap()),
        Err(Some((2, b"two".to_vec())))
    );
    assert_eq!(revision_of(records.compare_and_delete(&keys, 2).await.unwrap()), Ok(2));
    assert!(records.get(&keys).await.unwrap().is_none());
    assert_eq!(
        revision_of(records.compare_and_delete(&keys, 2).await.unwrap()),
        Err(None)
    );
    assert_eq!(
        revision_of(
            records
                .compare_and_set(&keys, Some(2), b"resurrected", None)
                .await
                .unwrap()
        ),
        Err(None)
    );
}

#[tokio::test]
async fn values_are_sealed_at_rest_and_expire_with_the_token() {
    let Some(server) = RedisServer::start() else { return };
    let fleet = fleet(&server, |c| c);
    let keys = fleet.records.keys("identity-b");
    fleet
        .records
        .compare_and_set(
            &keys,
            None,
            b"refresh-token-plaintext",
            Some(std::time::SystemTime::now() + Duration::from_secs(90)),
        )
        .await
        .unwrap();
    let raw = server.cli(&["HGET", &keys.record, "val"]);
    assert!(raw.starts_with("tk1.k1."), "{raw}");
    assert!(!raw.contains("refresh-token-plaintext"));
    let ttl: i64 = server.cli(&["PTTL", &keys.record]).parse().unwrap();
    assert!((80_000..=90_000).contains(&ttl), "TTL {ttl} ms");
    // A value tampered with in Redis is a typed error, not a panic or a token.
    server.cli(&[
        "HSET",
        &keys.record,
        "val",
        "tk1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(matches!(
        fleet.records.get(&keys).await,
        Err(crate::FleetStoreError::Seal(_))
    ));
}

#[tokio::test]
async fn one_lease_holder_and_a_waiter_is_woken_by_the_release_not_the_ttl() {
    let Some(server) = RedisServer::start() else { return };
    let ttl = Duration::from_secs(30);
    let a = fleet(&server, |c| c.lease_ttl(ttl));
    let b = fleet(&server, |c| c.lease_ttl(ttl));
    let keys = a.records.keys("identity-c");
    subscribed(&b, &keys).await;

    let LeaseOutcome::Held(guard) = a.leases.acquire(&keys, Instant::now() + ttl).await else {
        panic!("the first instance takes the lease")
    };
    let waiter = {
        let b = Arc::clone(&b);
        let keys = keys.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (b.leases.acquire(&keys, Instant::now() + ttl).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "the second instance waits");
    assert!(guard.release().await.unwrap());
    let (outcome, waited) = waiter.await.unwrap();
    assert!(matches!(outcome, LeaseOutcome::Changed), "{outcome:?}");
    assert!(waited < Duration::from_secs(5), "woken by the release after {waited:?}");
    // Free now: the waiter takes it on its next try.
    assert!(matches!(
        b.leases.acquire(&keys, Instant::now() + ttl).await,
        LeaseOutcome::Held(_)
    ));
}

#[tokio::test]
async fn the_watchdog_keeps_the_lease_past_its_ttl_and_a_dropped_guard_releases_it() {
    let Some(server) = RedisServer::start() else { return };
    let ttl = Duration::from_millis(600);
    let a = fleet(&server, |c| c.lease_ttl(ttl));
    let b = fleet(&server, |c| c.lease_ttl(ttl));
    let keys = a.records.keys("identity-d");
    let LeaseOutcome::Held(guard) = a.leases.acquire(&keys, Instant::now() + ttl).await else {
        panic!("lease")
    };
    // Three TTLs later the holder still holds it: the watchdog renewed it.
    tokio::time::sleep(ttl * 3).await;
    assert!(!guard.is_lost());
    assert!(a.leases.renewals.load(Ordering::Relaxed) >= 3);
    assert_eq!(server.cli(&["EXISTS", &keys.lease]), "1");
    assert!(matches!(
        b.leases
            .acquire(&keys, Instant::now() + Duration::from_millis(100))
            .await,
        LeaseOutcome::TimedOut
    ));
    drop(guard); // a cancelled or panicking holder
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cli(&["EXISTS", &keys.lease]) != "0" {
        assert!(Instant::now() < deadline, "the dropped guard released the lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_lease_taken_over_after_expiry_cannot_be_released_by_its_former_holder() {
    let Some(server) = RedisServer::start() else { return };
    let ttl = Duration::from_millis(300);
    let a = fleet(&server, |c| c.lease_ttl(ttl));
    let b = fleet(&server, |c| c.lease_ttl(ttl));
    let keys = a.records.keys("identity-e");
    let LeaseOutcome::Held(old) = a.leases.acquire(&keys, Instant::now() + ttl).await else {
        panic!("lease")
    };
    // The holder hangs (its watchdog cannot reach Redis): simulate by deleting and
    // letting another take it, as after an expiry.
    server.cli(&["DEL", &keys.lease]);
    let LeaseOutcome::Held(_new) = b.leases.acquire(&keys, Instant::now() + ttl).await else {
        panic!("takeover")
    };
    assert!(
        !old.release().await.unwrap(),
        "compare-and-delete spares the new holder's lease"
    );
    assert_eq!(server.cli(&["EXISTS", &keys.lease]), "1");
}

#[tokio::test]
async fn a_stopped_redis_is_a_bounded_error_and_a_restarted_one_is_used_again() {
    let Some(mut server) = RedisServer::start() else { return };
    let fleet = fleet(&server, |c| {
        c.operation_timeout(Duration::from_millis(200))
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
    });
    let mut events = fleet.events();
    let keys = fleet.records.keys("identity-f");
    fleet.records.compare_and_set(&keys, None, b"v", None).await.unwrap();

    server.pause();
    let started = Instant::now();
    assert!(fleet.records.get(&keys).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(matches!(
        events.recv().await.unwrap(),
        FleetEvent::RedisUnavailable { .. }
    ));
    server.resume();

    server.restart(); // killed and back, empty
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        match fleet.records.get(&keys).await {
            Ok(stored) => break stored,
            Err(_) => assert!(Instant::now() < deadline, "the link reconnects"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(stored.is_none(), "a fresh Redis");
    assert_eq!(events.recv().await.unwrap(), FleetEvent::RedisRecovered);
}
