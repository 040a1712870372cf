//! Prints the cost of one Argon2id hash at Passport's parameters, in milliseconds
//! (median of several, one thread, in reused memory as the server's hashing pool
//! does): the unit of login capacity in BENCHMARKS.md.

use passport::passwords::{hash_with, HashMemory};

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let mut memory = HashMemory::default();
    let _ = hash_with(&mut memory, b"warm-up");
    let mut times: Vec<f64> = (0..runs)
        .map(|i| {
            let start = std::time::Instant::now();
            hash_with(&mut memory, format!("password-{i}").as_bytes()).unwrap();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{:.2}", times[times.len() / 2]);
}
