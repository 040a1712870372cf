//! Where and how urgently Passport's threads run, so that a login storm does not
//! delay identify (docs/src/benchmarks.md, "Why it is built this way").
//!
//! - The password-hashing threads run under `SCHED_IDLE`: the kernel preempts one
//!   the moment any ordinary thread wakes on its CPU, and treats a CPU running only
//!   such threads as free when it places a waking thread. Hashing gets the time
//!   nothing else wants.
//! - The runtime's workers are pinned one to a CPU when there are exactly as many
//!   workers as CPUs the process may use (the default). Unpinned, the two workers
//!   of a 2-CPU machine were seen queued behind each other on one CPU for a whole
//!   scheduler tick while the other CPU ran a hashing thread: a busy worker never
//!   sleeps, so it is never re-placed, and a CPU that runs a hashing thread never
//!   goes idle, so it never pulls a waiting worker over.
//! - While the workers are busy more than half the time, only the first hashing
//!   thread takes jobs; the others stand aside (`WorkerLoad`). A CPU with no hashing
//!   thread on it goes idle between requests, and an idle CPU is where the kernel
//!   pulls queued threads to; with a hashing thread on every CPU, none ever does.
//!   Under an identify load logins slow down; alone they use every hashing thread.
//!
//! Threads inherit the CPUs of the thread that starts them, so every other runtime
//! thread, and every hashing thread, first takes back all the process's CPUs.
//! All of this is Linux's; elsewhere it does nothing. Each call is best effort: a
//! system that refuses loses the preference, never a request.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The multi-threaded runtime, its workers pinned when `pin_workers` asks and
/// the machine allows (see `WorkerPinning::plan`).
pub fn runtime(pin_workers: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(pinning) = default_workers().filter(|_| pin_workers).and_then(WorkerPinning::plan) {
        tracing::info!(cpus = ?pinning.cpus(), "request threads pinned one per CPU");
        let pinning = Arc::new(pinning);
        let on_park = pinning.clone();
        builder
            .worker_threads(pinning.cpus().len())
            .on_thread_start(move || pinning.on_thread_start())
            .on_thread_park(move || on_park.on_worker_park());
    }
    builder.build()
}

/// How many workers tokio starts by default: `TOKIO_WORKER_THREADS`, else the
/// available parallelism.
pub fn default_workers() -> Option<usize> {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
}

/// One CPU per runtime worker, handed out as the workers first go idle.
pub struct WorkerPinning {
    cpus: Vec<usize>,
    next: AtomicUsize,
}

thread_local! {
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

impl WorkerPinning {
    /// A plan for `workers` runtime workers, when the process may use exactly that
    /// many CPUs. With fewer workers pinning would idle CPUs; with more it would
    /// stack workers; either way the kernel places them better.
    pub fn plan(workers: usize) -> Option<WorkerPinning> {
        let cpus = os::allowed_cpus()?;
        (cpus.len() == workers && workers > 1).then(|| WorkerPinning {
            cpus,
            next: AtomicUsize::new(0),
        })
    }

    /// Every thread the runtime starts begins free to run on any of the process's
    /// CPUs, whichever (possibly pinned) thread started it.
    pub fn on_thread_start(&self) {
        os::set_cpus(&self.cpus);
    }

    /// Called by a worker each time it parks (only workers park); the first time,
    /// it takes the next CPU.
    pub fn on_worker_park(&self) {
        if PINNED.with(|p| p.replace(true)) {
            return;
        }
        let cpu = self.cpus[self.next.fetch_add(1, Ordering::Relaxed) % self.cpus.len()];
        os::set_cpus(&[cpu]);
    }

    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }
}

/// How busy the runtime's workers have been, from tokio's per-worker busy time.
pub struct WorkerLoad {
    metrics: tokio::runtime::RuntimeMetrics,
    last_at: Instant,
    last_busy: Duration,
}

impl WorkerLoad {
    /// Above this share of their time busy, the workers need the CPUs more than
    /// the extra hashing threads do.
    pub const BUSY: f64 = 0.5;

    /// The load of the runtime of the calling thread, if it runs in one.
    pub fn of_current_runtime() -> Option<WorkerLoad> {
        let metrics = tokio::runtime::Handle::try_current().ok()?.metrics();
        let last_busy = total_busy(&metrics);
        Some(WorkerLoad {
            metrics,
            last_at: Instant::now(),
            last_busy,
        })
    }

    /// The share of the workers' time spent busy since the last call (or since
    /// `of_current_runtime`), from 0 to 1.
    pub fn busy_since_last(&mut self) -> f64 {
        let (now, busy) = (Instant::now(), total_busy(&self.metrics));
        let elapsed = now.duration_since(self.last_at).as_secs_f64() * self.metrics.num_workers() as f64;
        let share = busy.saturating_sub(self.last_busy).as_secs_f64() / elapsed.max(f64::MIN_POSITIVE);
        (self.last_at, self.last_busy) = (now, busy);
        share.min(1.0)
    }

    /// Whether the workers were busy more than `BUSY` of the time since the last look.
    pub fn busy(&mut self) -> bool {
        self.busy_since_last() > Self::BUSY
    }
}

fn total_busy(metrics: &tokio::runtime::RuntimeMetrics) -> Duration {
    (0..metrics.num_workers())
        .map(|w| metrics.worker_total_busy_duration(w))
        .sum()
}

/// Makes the calling thread a background one: all the process's CPUs, and
/// `SCHED_IDLE` (or, where that is refused, the lowest nice value).
pub fn run_in_background() {
    if let Some(cpus) = os::allowed_cpus() {
        os::set_cpus(&cpus);
    }
    match os::idle_policy() {
        Some(Policy::Idle) => {}
        Some(Policy::Nice19) => tracing::warn!("SCHED_IDLE refused: a password hashing thread runs at nice 19"),
        None => tracing::warn!("could not lower the CPU priority of a password hashing thread"),
    }
}

/// The background policy a thread got.
enum Policy {
    Idle,
    Nice19,
}

/// Gives every thread of the process whose name starts with `prefix` all the
/// process's CPUs: for threads a library starts from a pinned worker, which
/// inherit its one CPU. Reads /proc, so it belongs where such threads are born
/// (a new database connection), not on a request's path.
pub fn release_threads_named(prefix: &str) {
    let (Some(cpus), Ok(tasks)) = (os::allowed_cpus(), std::fs::read_dir("/proc/self/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let named = std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.starts_with(prefix));
        if let (true, Some(tid)) = (named, task.file_name().to_str().and_then(|t| t.parse().ok())) {
            os::set_cpus_of(tid, &cpus);
        }
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::mem;
    use std::sync::OnceLock;

    /// The CPUs the process may use, read once (before any thread is pinned).
    pub fn allowed_cpus() -> Option<Vec<usize>> {
        static CPUS: OnceLock<Option<Vec<usize>>> = OnceLock::new();
        CPUS.get_or_init(|| {
            // SAFETY: `set` is a plain bit set of the size passed; pid 0 is this thread.
            unsafe {
                let mut set: libc::cpu_set_t = mem::zeroed();
                if libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                    return None;
                }
                let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect();
                (!cpus.is_empty()).then_some(cpus)
            }
        })
        .clone()
    }

    /// The CPUs of the calling thread.
    pub fn set_cpus(cpus: &[usize]) {
        set_cpus_of(0, cpus);
    }

    /// The CPUs of thread `tid` of this process (0: the calling thread).
    pub fn set_cpus_of(tid: libc::pid_t, cpus: &[usize]) {
        // SAFETY: as above; the CPU numbers came from sched_getaffinity.
        let done = unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(tid, mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if done != 0 {
            tracing::debug!(tid, ?cpus, "could not set the CPUs of a thread");
        }
    }

    /// SCHED_IDLE for the calling thread, or nice 19 where that is refused.
    pub fn idle_policy() -> Option<super::Policy> {
        // SAFETY: plain syscalls on the calling thread (0 / its tid); `param` lives
        // across the call.
        unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
                Some(super::Policy::Idle)
            } else if libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) == 0 {
                Some(super::Policy::Nice19)
            } else {
                None
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub fn allowed_cpus() -> Option<Vec<usize>> {
        None
    }
    pub fn set_cpus(_: &[usize]) {}
    pub fn set_cpus_of(_: i32, _: &[usize]) {}
    pub fn idle_policy() -> Option<super::Policy> {
        Some(super::Policy::Idle)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Field 41 of /proc/thread-self/stat: the scheduling policy (5 = SCHED_IDLE).
    fn policy_of_this_thread() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces; count from after its ')'.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    fn cpus_of_this_thread() -> String {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn a_background_thread_runs_under_sched_idle_on_every_cpu() {
        let all = std::thread::spawn(cpus_of_this_thread).join().unwrap();
        let (policy, cpus) = std::thread::spawn(|| {
            // Even when started by a pinned thread.
            os::set_cpus(&os::allowed_cpus().unwrap()[..1]);
            run_in_background();
            (policy_of_this_thread(), cpus_of_this_thread())
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE as u32);
        assert_eq!(cpus, all);
    }

    #[test]
    fn worker_load_tells_a_busy_runtime_from_an_idle_one() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut load = runtime.block_on(async { WorkerLoad::of_current_runtime() }).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let idle = load.busy_since_last();
        let parks = runtime.metrics().worker_park_count(0);
        runtime.block_on(async {
            tokio::spawn(async {
                let end = Instant::now() + Duration::from_millis(200);
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
            })
            .await
            .unwrap()
        });
        // A worker reports its busy time when it parks, just after the task ends.
        let deadline = Instant::now() + Duration::from_secs(5);
        while runtime.metrics().worker_park_count(0) == parks && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let busy = load.busy_since_last();
        assert!(
            idle < WorkerLoad::BUSY && busy > WorkerLoad::BUSY,
            "idle {idle}, busy {busy}"
        );
        assert!(WorkerLoad::of_current_runtime().is_none(), "outside a runtime");
    }

    #[test]
    fn workers_take_distinct_cpus_once_and_other_threads_take_all() {
        let cpus = os::allowed_cpus().unwrap();
        if cpus.len() < 2 {
            eprintln!("SKIPPED workers_take_distinct_cpus_once_and_other_threads_take_all: one CPU");
            return;
        }
        assert!(WorkerPinning::plan(cpus.len() + 1).is_none());
        let pinning = std::sync::Arc::new(WorkerPinning::plan(cpus.len()).unwrap());
        let all = std::thread::spawn(cpus_of_this_thread).join().unwrap();
        let taken: Vec<(String, String)> = (0..cpus.len())
            .map(|_| {
                let pinning = pinning.clone();
                std::thread::spawn(move || {
                    pinning.on_worker_park();
                    let first = cpus_of_this_thread();
                    pinning.on_worker_park(); // a second park changes nothing
                    let second = cpus_of_this_thread();
                    // A thread this worker starts inherits its CPU until it takes all back.
                    let child = std::thread::spawn({
                        let pinning = pinning.clone();
                        move || {
                            pinning.on_thread_start();
                            cpus_of_this_thread()
                        }
                    })
                    .join()
                    .unwrap();
                    assert_eq!(first, second);
                    (first, child)
                })
                .join()
                .unwrap()
            })
            .collect();
        let mut firsts: Vec<&String> = taken.iter().map(|(f, _)| f).collect();
        firsts.sort();
        firsts.dedup();
        assert_eq!(firsts.len(), cpus.len(), "each worker its own CPU: {taken:?}");
        assert!(taken.iter().all(|(_, child)| *child == all), "{taken:?}");
    }
}
