//! The memory of valid sessions (`redis_tracking`) on a Redis Cluster: a tracking
//! connection to every node, and trust only while every one of them is current.
//!
//! What keeps a hit right, beyond what holds on a single node:
//! - **Every node is tracked, replicas included.** A replica applies its primary's
//!   writes and pushes invalidations for them like any change, so the node a
//!   failover promotes has been tracked all along: no write lands on a node whose
//!   changes this process would not hear of. A slot moved to another node is
//!   written there (and deleted where it was), both heard of.
//! - **The cache is as fresh as its stalest node.** Each node's connection proves
//!   its freshness as on a single node; hits are used only while every node the
//!   cluster counts as up has proven it within the trust window, and while the
//!   topology itself (`CLUSTER NODES`, asked every heartbeat) is as recent. A node
//!   that stops answering stops every hit at once, until the cluster marks it
//!   failed (`fail`: its replica has taken over, or it serves nothing) and it is no
//!   longer waited for.
//! - **A node that appears stops the hits** until its connection is current, and
//!   every new connection forgets everything, as on a single node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, PushInfo, RedisConnectionInfo};
use tokio::task::JoinHandle;

use super::redis_tracking::{self, Freshness, NearCache, Watch, HEARTBEAT};

/// `confirmed` of a node with no current connection.
const NEVER: i64 = i64::MIN;
/// How long the topology may take to answer before the hits stop.
const TOPOLOGY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

/// Keeps `cache` fed from every node of the cluster `cluster` reaches, for as long
/// as the task runs. `node` carries the credentials every node is reached with.
pub async fn track(cache: Arc<NearCache>, mut cluster: ClusterConnection, node: RedisConnectionInfo, watch: Watch) {
    let tally = Arc::new(Tally {
        cache: cache.clone(),
        state: Mutex::new(State::default()),
    });
    let mut trackers: HashMap<String, Tracker> = HashMap::new();
    let mut answering = true;
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let sent = cache.now_ms();
        let nodes = redis::cmd("CLUSTER").arg("NODES").to_owned();
        let answer = tokio::time::timeout(TOPOLOGY_TIMEOUT, nodes.query_async::<String>(&mut cluster)).await;
        let Ok(Ok(nodes)) = answer else {
            if answering {
                tracing::warn!("the Redis Cluster did not say which nodes it has: identify asks Redis until it does");
                answering = false;
            }
            tally.topology_lost();
            continue;
        };
        answering = true;
        let up = nodes_up(&nodes);
        // A node counted out loses its tracker (dropping it ends its task).
        trackers.retain(|address, _| up.contains(address));
        tally.expect(&up, sent);
        for address in up {
            if trackers.contains_key(&address) {
                continue;
            }
            let Some(info) = connection_info(&address, &node) else {
                continue;
            };
            let fresh: Arc<dyn Freshness> = Arc::new(NodeFreshness {
                tally: tally.clone(),
                node: address.clone(),
            });
            let watch = watch.clone();
            let task = tokio::spawn(async move { redis_tracking::track_node(fresh, info, &watch, None).await });
            trackers.insert(address, Tracker(task));
        }
    }
}

/// A node's tracking task, ended when dropped: when its node is counted out, and
/// with all of them when this task is aborted (the store closed or dropped).
struct Tracker(JoinHandle<()>);

impl Drop for Tracker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The address (`host:port`) of every node of a `CLUSTER NODES` answer that the
/// cluster does not count out: not `fail`, nor without an address or still in
/// its handshake. A node only suspected (`fail?`) is still waited for.
fn nodes_up(nodes: &str) -> HashSet<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let address = f.get(1)?.split(['@', ',']).next()?;
            let out = f
                .get(2)?
                .split(',')
                .any(|flag| matches!(flag, "fail" | "noaddr" | "handshake"));
            (!out && !address.is_empty()).then(|| address.to_owned())
        })
        .collect()
}

fn connection_info(address: &str, node: &RedisConnectionInfo) -> Option<ConnectionInfo> {
    let (host, port) = address.rsplit_once(':')?;
    Some(ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.to_owned(), port.parse().ok()?),
        redis: node.clone(),
    })
}

/// Every node's freshness, and the topology's, combined into the cache's.
struct Tally {
    cache: Arc<NearCache>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each node waited for, with its newest proof of freshness (`NEVER` while it
    /// has no current connection).
    nodes: HashMap<String, i64>,
    /// When the newest answered topology was asked for.
    topology: Option<i64>,
    /// Whether the cache is trusting (its `tracking_since` was called and no loss since).
    trusting: bool,
}

impl Tally {
    /// Tells the cache what the tally now proves: everything before the stalest
    /// node's proof, or nothing.
    fn settle(&self, state: &mut State) {
        let stalest = state
            .nodes
            .values()
            .copied()
            .chain([state.topology.unwrap_or(NEVER)])
            .min();
        match stalest {
            Some(at) if at != NEVER && !state.nodes.is_empty() => {
                if state.trusting {
                    self.cache.confirm(at);
                } else {
                    // A new epoch: what was kept before the gap is not used.
                    self.cache.tracking_since(at);
                    state.trusting = true;
                }
            }
            _ => {
                if state.trusting {
                    self.cache.lost();
                    state.trusting = false;
                }
            }
        }
    }

    /// The nodes now up, from a topology asked for at `sent`.
    fn expect(&self, up: &HashSet<String>, sent: i64) {
        let mut state = self.state.lock();
        state.nodes.retain(|node, _| up.contains(node));
        for node in up {
            state.nodes.entry(node.clone()).or_insert(NEVER);
        }
        state.topology = Some(state.topology.map_or(sent, |t| t.max(sent)));
        self.settle(&mut state);
    }

    fn topology_lost(&self) {
        let mut state = self.state.lock();
        state.topology = None;
        self.settle(&mut state);
    }

    /// A node's new connection: everything kept is forgotten (a new epoch starts
    /// once every node is current again).
    fn node_since(&self, node: &str, sent: i64) {
        let mut state = self.state.lock();
        let Some(confirmed) = state.nodes.get_mut(node) else {
            return;
        };
        *confirmed = sent;
        if state.trusting {
            self.cache.lost();
            state.trusting = false;
        }
        self.settle(&mut state);
    }

    fn node_confirm(&self, node: &str, sent: i64) {
        let mut state = self.state.lock();
        match state.nodes.get_mut(node) {
            Some(confirmed) if *confirmed != NEVER => *confirmed = (*confirmed).max(sent),
            _ => return,
        }
        self.settle(&mut state);
    }

    fn node_lost(&self, node: &str) {
        let mut state = self.state.lock();
        let Some(confirmed) = state.nodes.get_mut(node) else {
            return;
        };
        *confirmed = NEVER;
        self.settle(&mut state);
    }
}

/// One node's tracking connection, reporting to the tally.
struct NodeFreshness {
    tally: Arc<Tally>,
    node: String,
}

impl Freshness for NodeFreshness {
    fn now_ms(&self) -> i64 {
        self.tally.cache.now_ms()
    }
    fn tracking_since(&self, sent: i64) {
        self.tally.node_since(&self.node, sent)
    }
    fn confirm(&self, sent: i64) {
        self.tally.node_confirm(&self.node, sent)
    }
    fn lost(&self) {
        self.tally.node_lost(&self.node)
    }
    fn apply(&self, push: &PushInfo) {
        self.tally.cache.apply(push)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;

    fn tally() -> Tally {
        Tally {
            cache: Arc::new(NearCache::default()),
            state: Mutex::new(State::default()),
        }
    }

    fn set(nodes: &[&str]) -> HashSet<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    fn keep(t: &Tally) -> SessionId {
        let sid = SessionId([1; 16]);
        let ticket = t.cache.ticket(&sid).expect("trusting");
        t.cache.admit(ticket, &sid, 7, 100, 1_000, 0);
        sid
    }

    #[test]
    fn trust_needs_every_node_and_the_topology() {
        let t = tally();
        let now = t.cache.now_ms();
        t.expect(&set(&["a:1", "b:2"]), now);
        t.node_since("a:1", now);
        assert!(!t.cache.is_current(), "b is not tracked yet");
        t.node_since("b:2", now);
        assert!(t.cache.is_current());
        let sid = keep(&t);
        assert!(t.cache.hit(7, &sid, 100, 0));

        t.topology_lost();
        assert!(!t.cache.is_current(), "the topology must be fresh too");
        t.expect(&set(&["a:1", "b:2"]), t.cache.now_ms());
        assert!(t.cache.is_current());
        assert!(!t.cache.hit(7, &sid, 100, 0), "a new epoch after a gap");
    }

    #[test]
    fn a_lost_node_stops_the_hits_until_the_cluster_counts_it_out() {
        let t = tally();
        let now = t.cache.now_ms();
        t.expect(&set(&["a:1", "b:2"]), now);
        t.node_since("a:1", now);
        t.node_since("b:2", now);
        let sid = keep(&t);
        t.node_lost("b:2");
        assert!(!t.cache.hit(7, &sid, 100, 0));
        t.node_confirm("b:2", t.cache.now_ms()); // an answer already on its way
        assert!(!t.cache.is_current(), "a heartbeat never revives a lost node");
        // The cluster marks b failed: it is no longer waited for.
        t.expect(&set(&["a:1"]), t.cache.now_ms());
        assert!(t.cache.is_current());
        assert!(!t.cache.hit(7, &sid, 100, 0), "what was kept before is not used");
    }

    #[test]
    fn a_new_node_stops_the_hits_until_it_is_tracked_and_forgets_everything() {
        let t = tally();
        let now = t.cache.now_ms();
        t.expect(&set(&["a:1"]), now);
        t.node_since("a:1", now);
        let sid = keep(&t);
        t.expect(&set(&["a:1", "c:3"]), t.cache.now_ms());
        assert!(!t.cache.is_current());
        t.node_since("c:3", t.cache.now_ms());
        assert!(t.cache.is_current());
        assert!(!t.cache.hit(7, &sid, 100, 0));
        // A node no longer waited for reports nothing.
        t.expect(&set(&["a:1"]), t.cache.now_ms());
        t.node_lost("c:3");
        assert!(t.cache.is_current());
    }

    #[test]
    fn failed_nodes_are_not_waited_for_and_suspected_ones_are() {
        let nodes = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7102@17102 master,fail - 1 1 2 disconnected
a3 127.0.0.1:7103@17103,host master,fail? - 0 2 3 connected 10923-16383
b1 127.0.0.1:7104@17104 slave a1 0 3 1 connected
b2 :0@0 slave,noaddr a3 0 3 1 disconnected
";
        assert_eq!(
            nodes_up(nodes),
            set(&["127.0.0.1:7101", "127.0.0.1:7103", "127.0.0.1:7104"])
        );
    }
}
