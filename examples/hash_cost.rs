//! Prints the cost of one Argon2id hash at Passport's parameters, in milliseconds:
//! the mean of several (one thread, in reused memory as the server's hashing pool
//! does), the unit of login capacity in docs/src/benchmarks.md. The mean, because capacity
//! is hashes per second (count over total time), and on a shared host one hash
//! takes 14 ms one second and 22 ms the next.

use passport::passwords::{hash_with, HashMemory};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100)
        .max(1);
    let mut memory = HashMemory::default();
    let _ = hash_with(&mut memory, b"warm-up");
    let start = std::time::Instant::now();
    for i in 0..runs {
        hash_with(&mut memory, format!("password-{i}").as_bytes()).unwrap();
    }
    println!("{:.2}", start.elapsed().as_secs_f64() * 1000.0 / runs as f64);
}
