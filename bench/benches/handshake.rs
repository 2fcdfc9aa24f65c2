//! What a HELLO costs the relay's control thread, step by step, in one run:
//! the cookie (one HMAC-SHA256, all a flood costs under load), the HELLO's
//! signature check, and the WELCOME (X25519, HKDF, an Ed25519 signature).
//! The default cookie threshold (docs/PROTOCOL.md) is chosen from these.
//! `cargo bench -p bench --bench handshake`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::handshake::{self as hs, ClientHandshake};
use dataplane::wire::handshake::DomainParams;
use dataplane::Peer;
use ed25519_zebra::SigningKey;

fn hello_steps(c: &mut Criterion) {
    let account = SigningKey::from([3; 32]);
    let node = SigningKey::from([4; 32]);
    let client = ClientHandshake::new(&account, [5; 32], 1_790_000_000_000, 1);
    let body = client.hello_body().to_vec();
    let hello = hs::parse_hello(&body).unwrap();
    let peer = Peer::v4([127, 0, 0, 1], 40000);
    let hash = client.hello_hash();
    let secret = [9u8; 32];
    let params = DomainParams::default();
    let mut g = c.benchmark_group("hello");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    g.warm_up_time(std::time::Duration::from_millis(500));
    g.measurement_time(std::time::Duration::from_secs(2));
    g.bench_function("cookie_hmac", |b| b.iter(|| hs::cookie(&secret, &peer, &hash)));
    g.bench_function("parse_and_params", |b| b.iter(|| hs::parse_hello(&body).unwrap()));
    g.bench_function("signature_check", |b| b.iter(|| assert!(hs::check_hello_signature(1, &body))));
    g.bench_function("welcome_x25519_hkdf_sign", |b| {
        b.iter(|| hs::relay_welcome(&node, [6; 32], &hello, &body, 7, &params, 1).unwrap())
    });
    g.bench_function("whole_hello", |b| {
        b.iter(|| {
            assert!(hs::check_hello_signature(1, &body));
            hs::relay_welcome(&node, [6; 32], &hello, &body, 7, &params, 1).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, hello_steps);
criterion_main!(benches);
