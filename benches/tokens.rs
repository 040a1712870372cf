//! Micro-benchmarks of the identify hot path without I/O: header parsing, token
//! signing and verification (with every claim check). `cargo bench --bench tokens`.

use criterion::{criterion_group, criterion_main, Criterion};
use passport::credentials;
use passport::ids::SessionId;
use passport::tokens::KeyRing;
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let ring = KeyRing::new(
        &[b"benchmark-secret-benchmark-secret-0123".to_vec()],
        "passport".into(),
        30,
        86_400,
    );
    let now = passport::clock::now();
    let claims = ring.claims_for(123_456, &SessionId::random(), now, now);
    let token = ring.sign(&claims).unwrap();
    let header = format!("JWT {token}");

    c.bench_function("header parse", |b| {
        b.iter(|| credentials::parse(Some(black_box(header.as_bytes()))).unwrap())
    });
    c.bench_function("token sign", |b| b.iter(|| ring.sign(black_box(&claims)).unwrap()));
    c.bench_function("token verify (signature and every claim check)", |b| {
        b.iter(|| ring.verify(black_box(&token), now).unwrap())
    });
    c.bench_function("header parse + token verify", |b| {
        b.iter(|| {
            let (_, t) = credentials::parse(Some(black_box(header.as_bytes()))).unwrap();
            ring.verify(t, now).unwrap()
        })
    });
}

criterion_group!(tokens, benches);
criterion_main!(tokens);
