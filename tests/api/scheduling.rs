//! Where a running `passport serve` puts its threads (Linux; `src/scheduling.rs`):
//! the hashing threads run under SCHED_IDLE, each request worker holds a CPU of its
//! own when there is one CPU per worker, and every other thread, SQLite connections
//! opened by a worker included, may run on all the process's CPUs.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use crate::helpers::*;
use crate::support::PassportProcess;

struct Thread {
    name: String,
    cpus: String,
    policy: u32,
}

/// Name, `Cpus_allowed_list` and scheduling policy (field 41 of `stat`) of every
/// thread of process `pid`.
fn threads_of(pid: u32) -> Vec<Thread> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let stat = read("stat");
        let policy = crate::support::stat_field(&stat, 41).and_then(|p| p.parse().ok());
        let cpus = cpus_allowed(&read("status"));
        if let (Some(policy), Some(cpus)) = (policy, cpus) {
            threads.push(Thread {
                name: read("comm").trim().to_owned(),
                cpus,
                policy,
            });
        }
    }
    threads
}

fn cpus_allowed(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|c| c.trim().to_owned())
}

/// Starts the binary, then registers and logs in 24 users at once: enough to make
/// the SQLite pool open connections from the request workers.
async fn busy_server(dir: &Path, extra: &[(&str, &str)]) -> PassportProcess {
    let server = PassportProcess::start(passport_bin(), &settings(dir, extra));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let answers = concurrently(24, |i| {
        let (client, register, login) = (
            client.clone(),
            server.url("/passport/register"),
            server.url("/passport/login"),
        );
        async move {
            let body = json!({ "mobile": format!("+861380000{i:04}"), "password": PASSWORD });
            let registered = client.post(register).json(&body).send().await.unwrap().status();
            let logged_in = client.post(login).json(&body).send().await.unwrap().status();
            (registered.as_u16(), logged_in.as_u16())
        }
    })
    .await;
    assert!(answers.iter().all(|&a| a == (201, 200)), "{answers:?}");
    server
}

#[tokio::test]
async fn hashing_runs_idle_workers_are_pinned_and_the_rest_may_run_anywhere() {
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = cpus_allowed(&own).unwrap();
    let allowed_count = own
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed:"))
        .map(|mask| {
            mask.trim()
                .chars()
                .filter_map(|c| c.to_digit(16))
                .map(u32::count_ones)
                .sum::<u32>() as usize
        })
        .unwrap();
    // The server's worker count, as `scheduling::runtime` reckons it.
    let workers = passport::scheduling::default_workers().unwrap();
    let pinning = workers == allowed_count && workers > 1;

    let tmp = tempfile::tempdir().unwrap();
    let server = busy_server(tmp.path(), &[("hash_workers", "2")]).await;
    let threads = threads_of(server.pid());
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("sqlx-sqlite")), "{names:?}");

    let hashing: Vec<&Thread> = threads.iter().filter(|t| t.name.starts_with("password-hash")).collect();
    assert_eq!(hashing.len(), 2, "{names:?}");
    for t in &hashing {
        assert_eq!(
            t.policy,
            libc::SCHED_IDLE as u32,
            "{} runs under policy {}",
            t.name,
            t.policy
        );
    }

    let pinned: Vec<&Thread> = threads.iter().filter(|t| t.cpus != all).collect();
    let described: Vec<String> = threads.iter().map(|t| format!("{} on {}", t.name, t.cpus)).collect();
    if pinning {
        let cpus: BTreeSet<&str> = pinned.iter().map(|t| t.cpus.as_str()).collect();
        assert!(
            pinned.len() == workers && cpus.len() == workers && pinned.iter().all(|t| t.name == "tokio-rt-worker"),
            "{workers} request workers on a CPU each, every other thread on {all}: {described:?}"
        );
    } else {
        eprintln!("no pinning expected: {workers} workers, CPUs {all}");
        assert!(pinned.is_empty(), "{described:?}");
    }
    drop(server);

    // pin_workers = false: nothing is pinned.
    let tmp = tempfile::tempdir().unwrap();
    let server = busy_server(tmp.path(), &[("pin_workers", "false")]).await;
    let pinned: Vec<String> = threads_of(server.pid())
        .into_iter()
        .filter(|t| t.cpus != all)
        .map(|t| format!("{} on {}", t.name, t.cpus))
        .collect();
    assert!(pinned.is_empty(), "{pinned:?}");
}
