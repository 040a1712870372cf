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
//!   its freshness as on a single node; hits are used only while every node waited
//!   for has proven it within the trust window, and while the topology itself
//!   (`CLUSTER NODES`, asked every [`TOPOLOGY_EVERY`]) is as recent. A node that
//!   stops answering stops every hit at once.
//! - **A node is waited for while it may serve.** That is every node of the answer
//!   except one marked failed (`fail`), without an address or in its handshake
//!   *and* owning no slot: a failed primary that still owns slots may be back and
//!   serving them (the cluster keeps the mark for a while after it returns), so it
//!   is waited for until its replica owns them. The answer comes from one node,
//!   whose view may lag another's, so a node stays waited for until no answer has
//!   named it for [`LINGER`]; and an answer naming a slot on its way to or from a
//!   node it does not count proves nothing.
//! - **A node that appears stops the hits** until its connection is current, and
//!   every new connection forgets everything, as on a single node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, PushInfo, RedisConnectionInfo};
use tokio::task::JoinHandle;

use super::redis_topology::ClusterNode;
use super::redis_tracking::{self, Freshness, NearCache, Watch};

/// `confirmed` of a node with no current connection.
const NEVER: i64 = i64::MIN;
/// How often the topology is asked for (it must be proven within the trust window too).
const TOPOLOGY_EVERY: Duration = Duration::from_millis(200);
/// How long the topology may take to answer before the hits stop.
const TOPOLOGY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a node is still waited for after the last answer that named it as one
/// that may serve.
const LINGER: Duration = Duration::from_secs(3);

/// Keeps `cache` fed from every node of the cluster `cluster` reaches, for as long
/// as the task runs. `node` carries the credentials every node is reached with.
pub async fn track(cache: Arc<NearCache>, mut cluster: ClusterConnection, node: RedisConnectionInfo, watch: Watch) {
    let tally = Arc::new(Tally {
        cache: cache.clone(),
        state: Mutex::new(State::default()),
    });
    let mut trackers: HashMap<String, Tracker> = HashMap::new();
    // Each node that may serve, with when an answer last said so.
    let mut named: HashMap<String, i64> = HashMap::new();
    let mut unreachable: HashSet<String> = HashSet::new();
    let mut answering = true;
    loop {
        tokio::time::sleep(TOPOLOGY_EVERY).await;
        let sent = cache.now_ms();
        let nodes = redis::cmd("CLUSTER").arg("NODES").to_owned();
        let answer = tokio::time::timeout(TOPOLOGY_TIMEOUT, nodes.query_async::<String>(&mut cluster)).await;
        let Some(serving) = answer.ok().and_then(Result::ok).and_then(|n| may_serve(&n)) else {
            if answering {
                tracing::warn!("the Redis Cluster did not say which nodes it has: identify asks Redis until it does");
                answering = false;
            }
            tally.topology_lost();
            continue;
        };
        answering = true;
        for node in serving {
            named.insert(node, sent);
        }
        named.retain(|_, at| sent - *at <= LINGER.as_millis() as i64);
        let waited: HashSet<String> = named.keys().cloned().collect();
        // A node no longer waited for loses its tracker (dropping it ends the task).
        trackers.retain(|address, _| waited.contains(address));
        tally.expect(&waited, sent);
        for address in waited {
            if trackers.contains_key(&address) {
                continue;
            }
            // A node that cannot be reached is waited for all the same (no hits
            // while it may serve); it is tried again on the next round.
            let Some(info) = connection_info(&address, &node) else {
                if unreachable.insert(address.clone()) {
                    tracing::warn!(node = %address, "a Redis Cluster node without a usable address: identify asks Redis");
                }
                continue;
            };
            unreachable.remove(&address);
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

/// The address (`host:port`) of every node of a `CLUSTER NODES` answer that may
/// serve: all but those marked `fail`, `noaddr` or `handshake` that own no slot. A
/// node only suspected (`fail?`) is among them. `None` when the answer has a slot
/// on its way to or from a node it does not count (`[slot->-id]`, `[slot-<-id]`).
fn may_serve(answer: &str) -> Option<HashSet<String>> {
    let nodes = ClusterNode::parse(answer);
    let serving: Vec<&ClusterNode> = nodes
        .iter()
        .filter(|n| {
            let out = ["fail", "noaddr", "handshake"].iter().any(|f| n.has(f));
            !out || n.slots > 0 || !n.moving.is_empty()
        })
        .collect();
    let counted = |id: &&str| serving.iter().any(|n| n.id == *id);
    serving
        .iter()
        .all(|n| n.moving.iter().all(counted))
        .then(|| serving.iter().map(|n| n.address.to_owned()).collect())
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

    /// A tally trusting `nodes`, each tracked since now.
    fn trusting(nodes: &[&str]) -> Tally {
        let t = tally();
        let now = t.cache.now_ms();
        t.expect(&set(nodes), now);
        nodes.iter().for_each(|n| t.node_since(n, now));
        assert!(t.cache.is_current());
        t
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
        let t = trusting(&["a:1", "b:2"]);
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
        let t = trusting(&["a:1"]);
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
    fn nodes_that_may_serve_are_waited_for() {
        let nodes = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5000 [5001->-b1]
a2 127.0.0.1:7102@17102 master,fail - 1 1 2 disconnected
a3 127.0.0.1:7103@17103,host master,fail? - 0 2 3 connected 10923-16383
a4 127.0.0.1:7107@17107 master,fail - 1 1 2 disconnected 5001-10922
b1 127.0.0.1:7104@17104 slave a1 0 3 1 connected
b2 :0@0 slave,noaddr a3 0 3 1 disconnected
";
        // a2: failed and owns nothing; b2: no address, nothing owned. a4 failed
        // but still owns slots: it may be back and serving them.
        assert_eq!(
            may_serve(nodes),
            Some(set(&[
                "127.0.0.1:7101",
                "127.0.0.1:7103",
                "127.0.0.1:7104",
                "127.0.0.1:7107"
            ]))
        );
        // A slot on its way to a node the answer does not count proves nothing.
        let unknown = nodes.replace("[5001->-b1]", "[5001->-c9]");
        assert_eq!(may_serve(&unknown), None);
        let importing = nodes.replace("[5001->-b1]", "[5001-<-a2]");
        assert_eq!(may_serve(&importing), None, "a2 is not counted");
    }
}
