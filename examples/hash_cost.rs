//! Prints the cost of one Argon2id hash at Passport's parameters, in milliseconds
//! (median of several, one thread): the unit of login capacity in BENCHMARKS.md.

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let _ = passport::passwords::hash_blocking(b"warm-up");
    let mut times: Vec<f64> = (0..runs)
        .map(|i| {
            let start = std::time::Instant::now();
            passport::passwords::hash_blocking(format!("password-{i}").as_bytes()).unwrap();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{:.2}", times[times.len() / 2]);
}
