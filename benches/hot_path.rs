//! Run with: `cargo bench --bench hot_path`
//!
//! Micro-benchmarks of what every forwarded request does before it reaches Zoom:
//! virtual-token verification, caller-key and grant lookup, header rewriting.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use grantmux::config::Caller;
use grantmux::grants::vtoken::{random_id, Claims, Kind, Signer};
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::proxy::headers::{bearer, prepare_request};
use grantmux::proxy::CallerKeys;
use grantmux::sim::SimConfig;
use http::{header, HeaderMap, HeaderValue};

const CALLER_KEY: &str = "caller-key-s2s-0123456789";

fn vtoken(c: &mut Criterion) {
    let signer = Signer::new([7; 32]);
    let claims = Claims {
        gid: "sim-client/user:sim-user".into(),
        bid: random_id(),
        typ: Kind::Access,
        iat: 1_700_000_000,
        exp: Some(1_700_003_599),
        jti: random_id(),
    };
    let token = signer.sign(&claims);
    let token = token.expose().to_owned();
    let mut g = c.benchmark_group("vtoken");
    g.bench_function("verify_valid", |b| {
        b.iter(|| signer.verify(black_box(&token)))
    });
    // A static caller key goes through `verify` first and is found foreign.
    g.bench_function("verify_foreign_caller_key", |b| {
        b.iter(|| signer.verify(black_box(CALLER_KEY)))
    });
    g.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&claims))));
    g.finish();
}

fn callers(c: &mut Criterion) {
    let keys: Vec<Caller> = (0..100)
        .map(|i| Caller {
            name: format!("caller-{i}"),
            key: format!("caller-key-{i:04}-0123456789").into(),
            grant: GrantKey::new("sim-client", Subject::Account(format!("account-{i}"))),
            weight: 1,
        })
        .collect();
    let callers = CallerKeys::new(&keys);
    c.bench_function("callers/lookup_of_100", |b| {
        b.iter(|| callers.lookup(black_box("caller-key-0042-0123456789")))
    });
}

/// `Registry::get` with 1 and with 10,000 grants, and `get_by_id` (the
/// virtual-token path, which parses the id first).
fn registry(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let h = rt
        .block_on(Harness::start(SimConfig::default(), |_| {}))
        .expect("harness starts");
    let registry = h.gmx.registry.clone();
    let key = GrantKey::new("sim-client", Subject::User("user-0".into()));
    registry.ensure(&key);
    let mut g = c.benchmark_group("registry");
    g.bench_function("get_of_1", |b| b.iter(|| registry.get(black_box(&key))));
    for i in 1..10_000 {
        registry.ensure(&GrantKey::new(
            "sim-client",
            Subject::User(format!("user-{i}")),
        ));
    }
    g.bench_function("get_of_10000", |b| b.iter(|| registry.get(black_box(&key))));
    let id = key.id();
    g.bench_function("get_by_id_of_10000", |b| {
        b.iter(|| registry.get_by_id(black_box(&id)))
    });
    g.finish();
    rt.block_on(h.shutdown());
}

fn headers(c: &mut Criterion) {
    // What a typical API client sends.
    let mut template = HeaderMap::new();
    template.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
    template.insert(
        header::USER_AGENT,
        HeaderValue::from_static("zoom-client/1.0"),
    );
    template.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    template.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    template.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    template.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer caller-key-s2s-0123456789"),
    );
    let host = HeaderValue::from_static("api.zoom.us");
    let mut real = HeaderValue::from_static("Bearer real-access-token-of-zoom-size");
    real.set_sensitive(true);
    let mut g = c.benchmark_group("headers");
    g.bench_function("prepare_request", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |h| prepare_request(h, &[], &host, Some(&real)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("bearer", |b| {
        b.iter(|| bearer(black_box(&template)).is_some())
    });
    g.finish();
}

/// The rate limiter's fast path: a call within budget (issue 16). Every call
/// of a shaped grant pays this; the budget here is wide enough never to wait.
fn ratelimit(c: &mut Criterion) {
    use grantmux::config::{Plan, RateLimit};
    use grantmux::ratelimit::{Flow, RateLimiter, Rates};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = RateLimit {
        enabled: true,
        plan: Plan::Custom,
        rates: Rates::new(1e9, 1e9, 1e9, 1e9),
        max_wait: Duration::from_secs(5),
        headroom: 0.0,
    };
    let limiter = RateLimiter::new(
        settings,
        None,
        grantmux::clock::Clock::new(),
        grantmux::metrics::MetricsRegistry::new().metrics,
    );
    let flow = Flow {
        id: Arc::from("caller:bench"),
        weight: 1,
    };
    let method = http::Method::GET;
    let mut g = c.benchmark_group("ratelimit");
    g.bench_function("ask_and_admit_within_budget", |b| {
        b.iter(|| {
            rt.block_on(async {
                let ask = limiter
                    .ask(
                        Arc::from("account-1"),
                        None,
                        &method,
                        black_box("/v2/users/KDcuGIm1QgePTO8WbOqwIQ/meetings"),
                        flow.clone(),
                    )
                    .expect("shaping on");
                limiter
                    .admit(&ask, tokio::time::Instant::now() + Duration::from_secs(5))
                    .await
                    .expect("within budget");
            })
        })
    });
    g.bench_function("route_template", |b| {
        b.iter(|| {
            grantmux::ratelimit::route_template(
                &method,
                black_box("/v2/users/KDcuGIm1QgePTO8WbOqwIQ/meetings"),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: these are nanosecond-scale and stable; the whole file runs in ~30 s.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = vtoken, callers, registry, headers, ratelimit
}
criterion_main!(benches);
