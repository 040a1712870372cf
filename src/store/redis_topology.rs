//! What Passport sees of the Redis behind its session store, for `/readyz`: how
//! it is reached, each primary with its replicas (and, on a Cluster, its slots),
//! and the nodes that fail.

use serde::Serialize;

/// Every slot of a Redis Cluster.
pub const CLUSTER_SLOTS: u32 = 16384;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// `node`, `sentinel` or `cluster`.
    pub mode: &'static str,
    /// Whether revocations wait for replicas (decided at start, where replicas were).
    pub durable_revocations: bool,
    /// Where this process keeps valid sessions in memory: whether it may use them
    /// now (every tracking connection current).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_cache_current: Option<bool>,
    /// On a Cluster, how many slots a primary that is up serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots_served: Option<u32>,
    pub primaries: Vec<Primary>,
    /// Nodes the cluster marks failing (`fail` or `fail?`), by address.
    pub failing: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Primary {
    pub address: String,
    /// Replicas linked to it and up.
    pub replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
}

impl Topology {
    /// Some users are refused: slots no primary serves, or (with durable
    /// revocations) a primary with no replica to confirm a logout on.
    pub fn degraded(&self) -> bool {
        self.slots_served.is_some_and(|s| s < CLUSTER_SLOTS)
            || (self.durable_revocations && self.primaries.iter().any(|p| p.replicas == 0))
    }

    /// A single node's or a Sentinel primary's `INFO replication`, reached at
    /// `address`.
    pub fn of_node(mode: &'static str, address: String, info: &str, durable_revocations: bool) -> Topology {
        let replicas = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count() as u32;
        Topology {
            mode,
            durable_revocations,
            session_cache_current: None,
            slots_served: None,
            primaries: vec![Primary {
                address,
                replicas,
                slots: None,
            }],
            failing: Vec::new(),
        }
    }

    /// A Cluster, from a node's `CLUSTER NODES`.
    pub fn of_cluster(answer: &str, durable_revocations: bool) -> Topology {
        let nodes = ClusterNode::parse(answer);
        let up = |n: &ClusterNode| !["fail", "fail?", "noaddr", "handshake"].iter().any(|f| n.has(f));
        let primaries: Vec<Primary> = nodes
            .iter()
            .filter(|n| n.has("master") && up(n) && n.slots > 0)
            .map(|p| Primary {
                address: p.address.to_owned(),
                replicas: nodes
                    .iter()
                    .filter(|r| r.has("slave") && r.primary == p.id && up(r))
                    .count() as u32,
                slots: Some(p.slots),
            })
            .collect();
        Topology {
            mode: "cluster",
            durable_revocations,
            session_cache_current: None,
            slots_served: Some(primaries.iter().filter_map(|p| p.slots).sum()),
            primaries,
            failing: nodes.iter().filter(|n| !up(n)).map(|n| n.address.to_owned()).collect(),
        }
    }
}

/// One line of a `CLUSTER NODES` answer:
/// `<id> <ip:port@cport[,host]> <flags> <primary id|-> <ping> <pong> <epoch> <link> <slot>…`.
pub(super) struct ClusterNode<'a> {
    pub id: &'a str,
    /// `host:port`, without the bus port or hostname.
    pub address: &'a str,
    pub flags: Vec<&'a str>,
    pub primary: &'a str,
    /// The slots it owns.
    pub slots: u32,
    /// The ids of the nodes its slots in motion go to or come from
    /// (`[slot->-id]`, `[slot-<-id]`).
    pub moving: Vec<&'a str>,
}

impl<'a> ClusterNode<'a> {
    /// Every node of an answer; a line without an id, address and flags is skipped.
    pub fn parse(answer: &'a str) -> Vec<ClusterNode<'a>> {
        answer
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let slots = f.get(8..).unwrap_or_default();
                Some(ClusterNode {
                    id: f.first()?,
                    address: f.get(1)?.split(['@', ',']).next()?,
                    flags: f.get(2)?.split(',').collect(),
                    primary: f.get(3).copied().unwrap_or("-"),
                    slots: slots.iter().map(|r| slot_count(r)).sum(),
                    moving: slots
                        .iter()
                        .filter_map(|s| {
                            let s = s.strip_prefix('[')?.strip_suffix(']')?;
                            s.split_once("->-").or_else(|| s.split_once("-<-")).map(|(_, id)| id)
                        })
                        .collect(),
                })
            })
            .collect()
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// The slots one `CLUSTER NODES` slot field names: `n`, `a-b`, or a slot being
/// moved (`[n->-id]`, `[n-<-id]`), which is counted where it still is.
fn slot_count(field: &str) -> u32 {
    if field.starts_with('[') {
        return 0;
    }
    match field.split_once('-') {
        Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) if a <= b => b - a + 1,
            _ => 0,
        },
        None => u32::from(field.parse::<u32>().is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three shards; the second primary has died and its replica took over.
    const NODES: &str = "\
a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7102@17102 master,fail - 1 1 2 disconnected
a3 127.0.0.1:7103@17103 master - 0 2 3 connected 10923-16383
b1 127.0.0.1:7104@17104 slave a1 0 3 1 connected
b2 127.0.0.1:7105@17105,host master - 0 4 7 connected 5461-10922 [5461->-a1]
b3 127.0.0.1:7106@17106 slave a3 0 5 3 connected
";

    #[test]
    fn a_cluster_with_a_failed_primary() {
        // b2, the promoted replica, has a hostname and a slot on its way to a1.
        let t = Topology::of_cluster(NODES, true);
        assert_eq!(t.slots_served, Some(CLUSTER_SLOTS));
        assert_eq!(t.failing, vec!["127.0.0.1:7102"]);
        let seen: Vec<(&str, u32, Option<u32>)> = t
            .primaries
            .iter()
            .map(|p| (p.address.as_str(), p.replicas, p.slots))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("127.0.0.1:7101", 1, Some(5461)),
                ("127.0.0.1:7103", 1, Some(5461)),
                ("127.0.0.1:7105", 0, Some(5462)),
            ]
        );
        // The promoted replica has no replica: logouts on it cannot be confirmed.
        assert!(t.degraded());
        assert!(!Topology::of_cluster(NODES, false).degraded());
    }

    #[test]
    fn slots_no_primary_serves_are_degraded() {
        let nodes = "a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-8191\n\
                     a2 127.0.0.1:7102@17102 master,fail? - 0 0 2 connected 8192-16383\n";
        let t = Topology::of_cluster(nodes, false);
        assert_eq!(t.slots_served, Some(8192));
        assert!(t.degraded());
    }

    #[test]
    fn a_node_counts_the_replicas_online() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7001,state=online,offset=10,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n";
        let t = Topology::of_node("node", "127.0.0.1:6379".into(), info, true);
        assert_eq!(t.primaries[0].replicas, 1);
        assert!(!t.degraded());
        assert!(Topology::of_node("node", "127.0.0.1:6379".into(), "role:master\r\n", true).degraded());
    }
}
