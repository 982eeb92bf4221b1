//! The delivery queues in Redis (`RedisStore` as `Outbox`): stores opened in
//! this process, as two replicas would hold them, on a `redis-server` of the
//! test's own. Redis's append-only file is fsynced on every write (see
//! `RedisServer::start`), so a killed Redis keeps what it acknowledged.

use std::time::{Duration, Instant};

use grantmux::config::KeySource;
use grantmux::secret::Secret;
use grantmux::store::outbox::contract;
use grantmux::store::{Message, Outbox, RedisStore, StoreError};
use tempfile::TempDir;

use crate::support::{eventually, RedisServer};

const STORE_KEY: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const LOCK_LEASE: Duration = Duration::from_secs(2);
/// Text that must never be readable in Redis: it stands for users' data.
const BODY_NEEDLE: &str = "topic-only-the-target-may-read";
const HEADER_NEEDLE: &str = "tracking-id-only-the-target-may-read";

/// A Redis of the test's own and the key file every store on it is opened with.
struct Fixture {
    redis: RedisServer,
    key_dir: TempDir,
}

impl Fixture {
    fn start() -> Self {
        let key_dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(key_dir.path().join("store.key"), STORE_KEY).expect("key written");
        Self {
            redis: RedisServer::start(),
            key_dir,
        }
    }

    /// A store as one replica opens it.
    async fn store(&self) -> RedisStore {
        let key = KeySource::File(self.key_dir.path().join("store.key"));
        let config = grantmux::config::RedisStore {
            url: Secret::new(self.redis.url()),
            lock_lease: LOCK_LEASE,
            sentinel: None,
            min_replicas_acked: 0,
            replica_ack_timeout: Duration::from_secs(1),
        };
        RedisStore::open(&config, &key)
            .await
            .expect("the redis store opens")
    }

    /// Every outbox value in Redis, raw, read past grantmux.
    fn raw_outbox_values(&self) -> Vec<Vec<u8>> {
        let mut conn = self.redis.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("grantmux:outbox*")
            .query(&mut conn)
            .expect("KEYS");
        let mut values = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
            match kind.as_str() {
                "list" => values.extend(
                    redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<Vec<u8>>>(&mut conn)
                        .expect("LRANGE"),
                ),
                "string" => values.push(
                    redis::cmd("GET")
                        .arg(&key)
                        .query::<Vec<u8>>(&mut conn)
                        .expect("GET"),
                ),
                other => panic!("{key} is a {other}"),
            }
        }
        values
    }
}

fn private_message() -> Message {
    Message {
        kind: "zoom".into(),
        event: "meeting.created".into(),
        app: Some("app".into()),
        body: format!(r#"{{"event":"meeting.created","payload":{{"topic":"{BODY_NEEDLE}"}}}}"#),
        headers: vec![("x-zm-trackingid".into(), HEADER_NEEDLE.into())],
        queued_at_ms: 1_700_000_000_000,
    }
}

/// Every id in `queue`, head first, read by acking each head in turn.
async fn drain_ids(store: &RedisStore, queue: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    while let Some(head) = store.head(queue).await.expect("head") {
        ids.push(head.id);
        store.ack(queue, head.id).await.expect("ack");
    }
    ids
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn redis_outbox_keeps_the_contract() {
    let fixture = Fixture::start();
    let store = fixture.store().await;
    contract::run(&store).await;
    contract::dead_letters_are_capped(&store).await;
}

/// One replica delivers a queue at a time: the other is refused while the
/// holder's lease lasts, the holder renews, and the other takes over only
/// once the holder stops renewing and its lease runs out.
#[tokio::test]
async fn one_replica_at_a_time_holds_an_outbox_claim() {
    let fixture = Fixture::start();
    let (a, b) = (fixture.store().await, fixture.store().await);
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(60);

    assert!(
        a.claim("q", short).await.expect("claim"),
        "A takes a free claim"
    );
    assert!(!b.claim("q", short).await.expect("claim"), "A holds it");
    assert!(
        b.claim("other", short).await.expect("claim"),
        "claims are per queue"
    );

    // A renews, here for long enough that the lease cannot run out meanwhile.
    assert!(
        a.claim("q", long).await.expect("claim"),
        "the holder renews"
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg("grantmux:outbox_claim:{q}")
        .query(&mut fixture.redis.connection())
        .expect("PTTL");
    assert!(
        ttl_ms > 30_000,
        "the renewal extended the lease: {ttl_ms} ms left"
    );
    assert!(
        !b.claim("q", short).await.expect("claim"),
        "A still holds it"
    );

    // A renews for a short lease and then stops, as a replica that died would.
    let renewed = Instant::now();
    assert!(a.claim("q", short).await.expect("claim"));
    eventually("B to take the claim once A's lease runs out", || async {
        b.claim("q", long).await.expect("claim")
    })
    .await;
    let waited = renewed.elapsed();
    // Redis's clock and ours may differ by a millisecond or so.
    assert!(
        waited + Duration::from_millis(20) >= short,
        "B took the claim {waited:?} after A's renewal, before A's lease ran out"
    );
    assert!(!a.claim("q", short).await.expect("claim"), "B holds it now");
}

/// What Redis acknowledged is still there after it is killed and started
/// again, delivery records and the id counter included.
#[tokio::test]
async fn outbox_messages_survive_a_redis_restart() {
    let mut fixture = Fixture::start();
    let store = fixture.store().await;
    let queue = ["restart".to_owned()];
    for n in 0..3 {
        store
            .push(&queue, &contract::message("e", n))
            .await
            .expect("push");
    }
    let mut head = store.head("restart").await.expect("head").expect("queued");
    head.attempts = 2;
    head.last_error = Some("status 503".into());
    store.update("restart", &head).await.expect("update");

    fixture.redis.kill();
    fixture.redis.restart();

    // The store's connection comes back by itself.
    eventually("the store to reach Redis again", || async {
        store.head("restart").await.is_ok()
    })
    .await;
    assert_eq!(
        store.head("restart").await.expect("head"),
        Some(head.clone())
    );
    assert_eq!(store.counts("restart").await.expect("counts").pending, 3);
    store
        .push(&queue, &contract::message("e", 3))
        .await
        .expect("push");
    let ids = drain_ids(&fixture.store().await, "restart").await;
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], head.id);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids rise past the restart: {ids:?}"
    );
}

/// Bodies hold users' data: nothing of a message is readable in Redis,
/// waiting or dead.
#[tokio::test]
async fn outbox_records_in_redis_are_sealed() {
    let fixture = Fixture::start();
    let store = fixture.store().await;
    let queues = ["sealed-a".to_owned(), "sealed-b".to_owned()];
    store.push(&queues, &private_message()).await.expect("push");
    store.push(&queues, &private_message()).await.expect("push");
    let head = store.head("sealed-a").await.expect("head").expect("queued");
    store.bury("sealed-a", &head).await.expect("bury");
    assert!(store
        .claim("sealed-a", Duration::from_secs(5))
        .await
        .expect("claim"));

    let values = fixture.raw_outbox_values();
    assert!(
        values.len() >= 5,
        "three waiting, one dead, the counter: {}",
        values.len()
    );
    for value in &values {
        for needle in [
            BODY_NEEDLE,
            HEADER_NEEDLE,
            "meeting.created",
            "x-zm-trackingid",
        ] {
            assert!(!contains(value, needle), "{needle:?} is readable in Redis");
        }
    }
    // The store reads back what it sealed.
    let dead = store.dead("sealed-a", 10).await.expect("dead");
    assert_eq!(dead[0].message, private_message());
}

/// A record is sealed to its queue: copied into another, it does not open.
#[tokio::test]
async fn an_outbox_record_moved_to_another_queue_does_not_open() {
    let fixture = Fixture::start();
    let store = fixture.store().await;
    store
        .push(&["from".to_owned()], &contract::message("e", 0))
        .await
        .expect("push");
    let _: Vec<u8> = redis::cmd("LMOVE")
        .arg("grantmux:outbox:{from}")
        .arg("grantmux:outbox:{to}")
        .arg("LEFT")
        .arg("RIGHT")
        .query(&mut fixture.redis.connection())
        .expect("LMOVE");
    match store.head("to").await {
        Err(StoreError::Corrupt(what)) => assert!(what.contains("outbox to"), "{what}"),
        other => panic!("a moved record opened: {other:?}"),
    }
}

/// Replicas pushing to the same queues at once: every message lands in each
/// of its queues, and ids rise in queue order although each replica reserves
/// its ids before it pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_outbox_pushes_keep_ids_rising() {
    let fixture = Fixture::start();
    let (a, b) = (fixture.store().await, fixture.store().await);
    let queues = ["x".to_owned(), "y".to_owned()];
    let pushes = |store: RedisStore, queues: [String; 2]| async move {
        for n in 0..50 {
            store
                .push(&queues, &contract::message("e", n))
                .await
                .expect("push");
        }
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(pushes(a.clone(), queues.clone())),
        tokio::spawn(pushes(b.clone(), queues.clone()))
    );
    ra.expect("A's pushes");
    rb.expect("B's pushes");
    for queue in &queues {
        let ids = drain_ids(&a, queue).await;
        assert_eq!(ids.len(), 100, "{queue} holds every message");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{queue}: {ids:?}");
    }
}

/// A push whose ids are below a queue's tail (here: the counter deleted by
/// hand) is refused by Redis and reserves again, above the tail.
#[tokio::test]
async fn an_outbox_push_below_the_tail_reserves_again() {
    let fixture = Fixture::start();
    let store = fixture.store().await;
    let queue = ["tail".to_owned()];
    for n in 0..3 {
        store
            .push(&queue, &contract::message("e", n))
            .await
            .expect("push");
    }
    let _: i64 = redis::cmd("DEL")
        .arg("grantmux:outbox_ids")
        .query(&mut fixture.redis.connection())
        .expect("DEL");
    store
        .push(&queue, &contract::message("e", 3))
        .await
        .expect("push");
    let ids = drain_ids(&store, "tail").await;
    assert_eq!(ids.len(), 4);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "reserved above the tail: {ids:?}"
    );
}
