//! Backend fixtures for the tests that need real servers: a database of their own on
//! the shared PostgreSQL, a key prefix of their own on the shared Redis, and
//! private servers (a Redis Cluster, a Redis and a PostgreSQL the tests stop and
//! start) on free loopback ports, each stopped by pid when dropped.
//!
//! With `CI=true` an unreachable server fails the test; without it the test is
//! skipped with a message on stderr saying how to run it.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_MYSQL: &str = "mysql://root@127.0.0.1:3306/mysql";

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fails under CI; otherwise says on stderr (past the test harness's capture) that
/// the test was skipped and how to run it.
pub fn unavailable(test: &str, what: &str) {
    if in_ci() {
        panic!("{test}: {what}; CI=true requires every backend test to run");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what}. Start PostgreSQL on 127.0.0.1:5432, MariaDB (or MySQL) on \
         127.0.0.1:3306 and Redis on 127.0.0.1:6379 (or set PASSPORT_TEST_POSTGRES_URL / \
         PASSPORT_TEST_MYSQL_URL / PASSPORT_TEST_REDIS_URL), with redis-server, redis-cli, PostgreSQL's \
         initdb and MariaDB's mariadbd installed, then run `cargo test`; with CI=true a missing backend fails."
    );
}

/// A short random name part.
pub fn unique() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn reachable(host_port: &str) -> bool {
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

/// `host:port` of a URL like `scheme://user@host:port/db`.
fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A database of this test's own on the shared PostgreSQL, dropped afterwards.
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn create(test: &str) -> Option<TestDb> {
        let admin_url = std::env::var("PASSPORT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        if !reachable(&host_port(&admin_url)) {
            unavailable(
                test,
                &format!("PostgreSQL is not reachable at {}", host_port(&admin_url)),
            );
            return None;
        }
        let name = format!("passport_test_{}", unique());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await;
        let conn = admin
            .as_mut()
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url}: {e}"));
        sqlx::Executor::execute(conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
        Some(TestDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        on_own_runtime(async move {
            if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::Executor::execute(&mut c, drop.as_str()).await;
            }
        });
    }
}

/// Runs `work` to its end on a runtime of its own, in a thread of its own: a
/// `Drop` runs inside a test's runtime or outside any.
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join();
}

/// The shared Redis, or `None` (skipped) when it does not answer.
pub fn shared_redis(test: &str) -> Option<String> {
    let url = std::env::var("PASSPORT_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.to_owned());
    if !reachable(&host_port(&url)) {
        unavailable(test, &format!("Redis is not reachable at {}", host_port(&url)));
        return None;
    }
    Some(url)
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Child processes killed (by pid) when dropped.
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Field `n` (numbered from 1, as proc(5) does) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n.checked_sub(3)?)
}

/// Waits until a Redis session store's memory of valid sessions is in use
/// (tracking current), for at most 10 s.
pub async fn tracking_current(store: &passport::store::redis::RedisSessions) {
    tracking_current_within(store, Duration::from_secs(10)).await
}

/// The same, for at most `within` (a failover takes longer than a start).
pub async fn tracking_current_within(store: &passport::store::redis::RedisSessions, within: Duration) {
    let start = Instant::now();
    while !store.tracking() {
        assert!(start.elapsed() < within, "Redis tracking not current after {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A Redis server of the test's own (it can be stopped and started again).
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    process: Option<Processes>,
}

impl PrivateRedis {
    pub fn start(test: &str) -> Option<PrivateRedis> {
        PrivateRedis::start_with(test, &[])
    }

    /// With extra `redis-server` arguments, kept across `stop` and `resume`.
    pub fn start_with(test: &str, extra: &[&str]) -> Option<PrivateRedis> {
        if !have("redis-server") {
            unavailable(test, "redis-server is not installed");
            return None;
        }
        let mut r = PrivateRedis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            process: None,
        };
        r.resume();
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL, as a crash would).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Freezes the server (SIGSTOP): its connections stay open and nothing answers.
    /// Returns once the kernel shows it stopped.
    pub fn pause(&mut self) {
        let pid = self.pid();
        assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        let stat = format!("/proc/{pid}/stat");
        let state = || stat_field(&std::fs::read_to_string(&stat).unwrap_or_default(), 3).map(str::to_owned);
        let start = std::time::Instant::now();
        while state().as_deref() != Some("T") {
            assert!(start.elapsed() < Duration::from_secs(5), "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn unpause(&mut self) {
        assert!(Command::new("kill")
            .args(["-CONT", &self.pid()])
            .status()
            .unwrap()
            .success());
    }

    fn pid(&self) -> String {
        self.process.as_ref().expect("redis-server is running").0[0]
            .id()
            .to_string()
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let child = redis_server(self.port, self.dir.path(), &extra);
        self.process = Some(Processes(vec![child]));
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start"
        );
    }
}

fn redis_server(port: u16, dir: &Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server")
}

/// A Redis Cluster of three masters on free loopback ports.
pub struct Cluster {
    pub ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
    _processes: Processes,
}

/// A primary, its replica and three sentinels watching them as the service
/// `passport` (a second of silence marks the primary down), private to a test.
pub struct Sentinels {
    pub primary: PrivateRedis,
    pub replica: PrivateRedis,
    pub ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
    _processes: Processes,
}

impl Sentinels {
    pub fn start(test: &str) -> Option<Sentinels> {
        if !have("redis-cli") {
            unavailable(test, "redis-cli is needed to watch the sentinels");
            return None;
        }
        let primary = PrivateRedis::start_with(test, &["--repl-diskless-sync-delay", "0"])?;
        let primary_port = primary.port.to_string();
        let replica = PrivateRedis::start_with(test, &["--replicaof", "127.0.0.1", &primary_port])?;
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let children = ports
            .iter()
            .zip(&dirs)
            .map(|(port, dir)| {
                // Sentinel rewrites its configuration file: one of its own each.
                let conf = dir.path().join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n\
                         sentinel monitor passport 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds passport 1000\n\
                         sentinel failover-timeout passport 5000\n\
                         sentinel parallel-syncs passport 1\n",
                        dir.path().display()
                    ),
                )
                .unwrap();
                let mut sentinel = if on_path("redis-sentinel") {
                    let mut c = Command::new("redis-sentinel");
                    c.arg(&conf);
                    c
                } else {
                    let mut c = Command::new("redis-server");
                    c.arg(&conf).arg("--sentinel");
                    c
                };
                sentinel
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-sentinel")
            })
            .collect();
        let set = Sentinels {
            primary,
            replica,
            ports,
            _dirs: dirs,
            _processes: Processes(children),
        };
        // Ready when every sentinel knows the replica and the two other sentinels.
        let start = Instant::now();
        for port in &set.ports {
            assert!(
                wait_for_port(*port, Duration::from_secs(10)),
                "sentinel {port} did not start"
            );
            loop {
                let replicas = set.cli(*port, &["sentinel", "replicas", "passport"]);
                let others = set.cli(*port, &["sentinel", "sentinels", "passport"]);
                if replicas.contains("master-link-status") && others.matches("runid").count() >= 2 {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the sentinels did not settle"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(set)
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis+sentinel://h1:p1,h2:p2,h3:p3/passport`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/passport", hosts.join(","))
    }
}

/// The arguments of every cluster node.
const CLUSTER_NODE: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--repl-diskless-sync-delay",
    "0",
    // The slots of healthy primaries keep being served while one shard fails over.
    "--cluster-require-full-coverage",
    "no",
];

impl Cluster {
    /// Three primaries, no replica.
    pub fn start(test: &str) -> Option<Cluster> {
        Cluster::start_with(test, 0)
    }

    /// Three primaries with `replicas` replicas each; a node is deemed failed after
    /// one second (`cluster-node-timeout`), so a replica takes over within seconds.
    pub fn start_with(test: &str, replicas: usize) -> Option<Cluster> {
        if !have("redis-server") || !have("redis-cli") {
            unavailable(test, "redis-server and redis-cli are needed to start a Redis Cluster");
            return None;
        }
        let n = 3 * (1 + replicas);
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let children = ports
            .iter()
            .zip(&dirs)
            .map(|(p, d)| redis_server(*p, d.path(), CLUSTER_NODE))
            .collect();
        let processes = Processes(children);
        for p in &ports {
            assert!(
                wait_for_port(*p, Duration::from_secs(10)),
                "cluster node {p} did not start"
            );
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster {
            ports,
            _dirs: dirs,
            _processes: processes,
        };
        // Wait until every node agrees the cluster is up, and every replica has
        // its primary's data.
        let start = Instant::now();
        for p in &cluster.ports {
            loop {
                let info = cluster.cli(*p, &["cluster", "info"]);
                let replication = cluster.cli(*p, &["info", "replication"]);
                let synced = replication.contains("role:master") || replication.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && synced {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(30), "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(cluster)
    }

    /// What `redis-cli -p <port> <args>` prints.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the primary that now serves `slot`, asked of a node still up.
    pub fn primary_of(&self, slot: u16, ask: u16) -> Option<u16> {
        let nodes = self.cli(ask, &["cluster", "nodes"]);
        nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let primary = fields.get(2)?.split(',').any(|f| f == "master") && !fields[2].contains("fail");
            let serves = fields.iter().skip(8).any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
                }
                None => range.parse::<u16>().ok() == Some(slot),
            });
            let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            (primary && serves).then_some(port)
        })
    }

    /// Starts the killed node on `port` again, on its own data: it rejoins the
    /// cluster (as a replica, if its shard failed over meanwhile).
    pub fn revive(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        self._processes.0[i] = redis_server(port, self._dirs[i].path(), CLUSTER_NODE);
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "cluster node {port} did not start"
        );
    }

    /// Kills the node on `port` (SIGKILL, as a crash would).
    pub fn kill(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        let child = &mut self._processes.0[i];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The setting value: several node URLs separated by commas.
    /// The cluster as several `redis://` URLs separated by commas.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cluster in the `redis+cluster://h1:p1,h2:p2,…` form.
    pub fn cluster_url(&self) -> String {
        let hosts: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// Waits (at most 10 s) until nothing listens on `port`, so that a restart can bind it.
fn wait_until_closed(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `program` is an executable file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A private server a fault test stops and starts again.
pub trait StopAndStart {
    fn stop(&mut self);
    fn resume(&mut self);
}

impl StopAndStart for PrivatePostgres {
    fn stop(&mut self) {
        PrivatePostgres::stop(self)
    }
    fn resume(&mut self) {
        PrivatePostgres::resume(self)
    }
}

impl StopAndStart for PrivateMariadb {
    fn stop(&mut self) {
        PrivateMariadb::stop(self)
    }
    fn resume(&mut self) {
        PrivateMariadb::resume(self)
    }
}

/// A database of this test's own on the shared MySQL or MariaDB, dropped afterwards.
pub struct TestMysql {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestMysql {
    pub async fn create(test: &str) -> Option<TestMysql> {
        let admin_url = std::env::var("PASSPORT_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL.to_owned());
        if !reachable(&host_port(&admin_url)) {
            unavailable(test, &format!("MariaDB is not reachable at {}", host_port(&admin_url)));
            return None;
        }
        Some(TestMysql::create_on(&admin_url).await)
    }

    /// A new database on the server of `admin_url` (which names any database).
    pub async fn create_on(admin_url: &str) -> TestMysql {
        let name = format!("passport_test_{}", unique());
        let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {}: {e}", host_port(admin_url)));
        sqlx::Executor::execute(
            &mut admin,
            // latin1 on purpose: the store must make its tables utf8mb4 whatever the
            // database's default.
            format!("CREATE DATABASE {name} CHARACTER SET latin1").as_str(),
        )
        .await
        .unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
        TestMysql {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for TestMysql {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        on_own_runtime(async move {
            if let Ok(mut c) = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin).await {
                let _ = sqlx::Executor::execute(&mut c, format!("DROP DATABASE IF EXISTS {name}").as_str()).await;
            }
        });
    }
}

/// A MariaDB server of the test's own (mariadb-install-db into a temp dir), to stop
/// and start. It runs without grant tables: loopback only, for this test alone.
pub struct PrivateMariadb {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Processes>,
}

impl PrivateMariadb {
    pub fn start(test: &str) -> Option<PrivateMariadb> {
        // Looked up, not run: `mariadb-install-db --version` would install.
        if !Path::new("/usr/sbin/mariadbd").exists() || !on_path("mariadb-install-db") {
            unavailable(test, "MariaDB's mariadbd and mariadb-install-db are not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg("--skip-test-db");
        if is_root() {
            install.arg("--user=root");
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = PrivateMariadb {
            port: free_port(),
            dir,
            process: None,
        };
        db.resume();
        Some(db)
    }

    /// The URL of its `mysql` database (any test database is made beside it).
    pub fn admin_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }

    /// Stops the server (SIGKILL: every connection is cut at once, as in a crash;
    /// InnoDB recovers at the next start).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            for c in &mut p.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        wait_until_closed(self.port);
    }

    pub fn resume(&mut self) {
        let d = self.dir.path();
        let mut server = Command::new("/usr/sbin/mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=16M",
            ]);
        if is_root() {
            server.arg("--user=root");
        }
        let child = server
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.process = Some(Processes(vec![child]));
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "mariadbd did not start"
        );
    }
}

/// A PostgreSQL server of the test's own (initdb into a temp dir), to stop and start.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    process: Option<Processes>,
}

fn postgres_bin() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    if dir.join("initdb").exists() {
        return Some(dir);
    }
    // Debian's pg_config may belong to another version than the server.
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (the server
/// refuses to run as root). `setpriv` execs in place, so the pid we hold is the
/// program's own and killing it kills the server.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    pub fn start(test: &str) -> Option<PrivatePostgres> {
        let Some(bin) = postgres_bin() else {
            unavailable(test, "PostgreSQL's initdb is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "chown of the PostgreSQL data dir");
        }
        let out = pg_command(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.path().join("pg"))
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = PrivatePostgres {
            port: free_port(),
            dir,
            bin,
            process: None,
        };
        pg.resume();
        Some(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: every connection is cut at once).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            for c in &mut p.0 {
                let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
                let _ = c.wait();
            }
        }
        // The postmaster's children notice their parent is gone and exit; wait until
        // the port is closed so that a restart can bind it.
        wait_until_closed(self.port);
    }

    pub fn resume(&mut self) {
        let data = self.dir.path().join("pg");
        // A killed postmaster leaves its pid file; a fresh start must not see it as live.
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let child = pg_command(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        self.process = Some(Processes(vec![child]));
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "postgres did not start"
        );
    }
}

/// The signing secret of every test server.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// The settings every test server gets (port 0, files in `dir`, the test secret,
/// per-IP limits high enough for many requests from one address), plus `extra`,
/// which win; an empty value in `extra` removes the setting, to run on its default.
pub fn settings(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = vec![
        ("listen".into(), "127.0.0.1:0".into()),
        ("data_dir".into(), dir.join("data").display().to_string()),
        (
            "audit_log".into(),
            dir.join("logs/user_action.log").display().to_string(),
        ),
        ("secret_key".into(), SECRET.into()),
        ("rate_login_ip".into(), "100000/60".into()),
        ("rate_register_ip".into(), "100000/60".into()),
    ];
    for (k, v) in extra {
        s.retain(|(key, _)| key != k);
        if !v.is_empty() {
            s.push(((*k).into(), (*v).into()));
        }
    }
    s
}

/// The configuration `settings` gives, as an in-process server reads it.
pub fn config(dir: &Path, extra: &[(&str, &str)]) -> passport::Config {
    let sources = passport::config::Sources::from_pairs(settings(dir, extra)).expect("known settings");
    passport::Config::from_sources(&sources).expect("test config")
}

/// The binary `bin` with these settings, each as its flag, except `secret_key`,
/// which goes by environment (never on a command line others can read); no
/// configuration file.
pub fn passport_command(bin: &str, settings: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, v) in settings {
        if k == "secret_key" {
            cmd.env("PASSPORT_SECRET_KEY", v);
        } else {
            cmd.arg(format!("--{}", k.replace('_', "-"))).arg(v);
        }
    }
    cmd.env_remove("PASSPORT_CONFIG");
    cmd
}

/// A `passport serve` process on port 0, killed when dropped.
pub struct PassportProcess {
    pub addr: String,
    child: Option<Child>,
}

impl PassportProcess {
    /// Starts the binary with these settings (`secret_key` goes by environment)
    /// and reads its bound address from its log.
    pub fn start(bin: &str, settings: &[(String, String)]) -> PassportProcess {
        PassportProcess::start_logging(bin, settings, "info", None)
    }

    /// As `start`, at log level `level`, its whole log kept in `log` when given.
    pub fn start_logging(bin: &str, settings: &[(String, String)], level: &str, log: Option<&Path>) -> PassportProcess {
        use std::io::{BufRead, BufReader};
        let mut kept: Box<dyn std::io::Write + Send> = match log {
            Some(path) => Box::new(std::fs::File::create(path).unwrap()),
            None => Box::new(std::io::sink()),
        };
        let mut child = passport_command(bin, settings)
            .arg("serve")
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start passport");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let addr = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("passport exited before listening");
            }
            kept.write_all(line.as_bytes()).unwrap();
            if let Some(addr) = listening_addr(&strip_ansi(&line)) {
                break addr;
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut kept));
        PassportProcess {
            addr,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process present").id()
    }

    /// Hands the process over to the caller, who decides how it ends.
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("process present")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for PassportProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The address of a "passport listening" log line, in the text or the JSON format.
fn listening_addr(line: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json["fields"]["addr"].as_str().map(str::to_owned);
    }
    let rest = line.split("addr=").nth(1)?;
    rest.split_whitespace().next().map(str::to_owned)
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The nginx binary: on PATH, or where Debian puts it.
fn nginx_bin() -> Option<String> {
    ["nginx", "/usr/sbin/nginx"]
        .iter()
        .find(|p| have(p))
        .map(|p| p.to_string())
}

/// Debian's nginx-rtmp module.
pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Whether nginx with the RTMP module and ffmpeg are installed; says how to get
/// them otherwise (a failure under CI).
pub fn live_software(test: &str) -> bool {
    let missing = if nginx_bin().is_none() {
        Some("nginx is not installed")
    } else if !Path::new(RTMP_MODULE).exists() {
        Some("nginx's RTMP module is not installed")
    } else if !have("ffmpeg") {
        Some("ffmpeg is not installed")
    } else {
        None
    };
    match missing {
        None => true,
        Some(what) => {
            if in_ci() {
                panic!("{test}: {what}; CI=true requires the live-stream tests to run");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {what}. Install Debian's nginx-light, libnginx-mod-rtmp and ffmpeg \
                 (apt-get install nginx-light libnginx-mod-rtmp ffmpeg), then run `cargo test`."
            );
            false
        }
    }
}

/// A private nginx on free loopback ports: an RTMP server whose `live` application
/// asks Passport's nginx-rtmp hook (re-checking every second), and an HTTP server
/// whose `/hls/<stream>/…` is protected by `auth_request` to Passport's
/// `/auth/verify?stream=<stream>`. Stopped by pid when dropped.
pub struct PrivateNginx {
    pub rtmp_port: u16,
    pub http_port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl PrivateNginx {
    /// The configuration: the book's own nginx snippets (docs/src/snippets/), so
    /// that what the guides show is what these tests run, with this test's
    /// addresses and a one-second re-check in place of the book's.
    pub fn config(dir: &Path, passport: &str, rtmp_port: u16, http_port: u16) -> String {
        let d = dir.display();
        let rtmp = book_snippet(
            "nginx-rtmp.conf",
            &[
                ("127.0.0.1:8080", passport),
                ("listen 1935;", &format!("listen 127.0.0.1:{rtmp_port};")),
                ("notify_update_timeout 10s;", "notify_update_timeout 1s;"),
            ],
        );
        assert!(
            rtmp.contains(&format!("load_module {RTMP_MODULE};")),
            "the book loads another RTMP module"
        );
        let auth_request = book_snippet(
            "nginx-auth-request.conf",
            &[
                ("127.0.0.1:8080", passport),
                ("root /var/www;", &format!("root {d}/www;")),
            ],
        );
        format!(
            "{rtmp}
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}

http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{http_port};
{auth_request}
    }}
}}
"
        )
    }

    pub fn start(test: &str, passport: &str) -> Option<PrivateNginx> {
        if !live_software(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (rtmp_port, http_port) = (free_port(), free_port());
        let conf = dir.path().join("nginx.conf");
        // nginx's workers drop root: they must be able to read the playlist.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("www/hls/show")).unwrap();
        std::fs::write(dir.path().join("www/hls/show/index.m3u8"), "#EXTM3U\n").unwrap();
        std::fs::write(&conf, Self::config(dir.path(), passport, rtmp_port, http_port)).unwrap();
        let child = Command::new(nginx_bin().unwrap())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process on;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = PrivateNginx {
            rtmp_port,
            http_port,
            dir,
            child,
        };
        let up = wait_for_port(rtmp_port, Duration::from_secs(10)) && wait_for_port(http_port, Duration::from_secs(10));
        if !up {
            let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
            panic!("{test}: nginx did not start: {log}");
        }
        Some(nginx)
    }

    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{path}", self.rtmp_port)
    }
}

impl Drop for PrivateNginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; a kill would leave them behind.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A snippet of the book (`docs/src/snippets/<name>`) with each `(from, to)`
/// replaced; a `from` the snippet no longer holds fails the test, so the book cannot
/// change under a test that no longer runs what it shows.
pub fn book_snippet(name: &str, replace: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/src/snippets")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in replace {
        assert!(text.contains(from), "docs/src/snippets/{name} no longer has {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// ffmpeg, quiet, with these arguments.
fn ffmpeg(args: &[&str]) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// ffmpeg publishing a test pattern for `seconds` to `url`.
pub fn ffmpeg_publish(url: &str, seconds: u32) -> Command {
    let t = seconds.to_string();
    let encode = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-f",
        "flv",
    ];
    let mut args = vec!["-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", &t];
    args.extend(encode);
    args.push(url);
    ffmpeg(&args)
}

/// ffmpeg playing `url` for `seconds`, to nowhere.
pub fn ffmpeg_play(url: &str, seconds: u32) -> Command {
    let t = seconds.to_string();
    ffmpeg(&["-rw_timeout", "5000000", "-i", url, "-t", &t, "-f", "null", "-"])
}
