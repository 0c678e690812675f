//! The consumer group coordinator: Kafka's classic group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) with generations, rebalances and session
//! timeouts. Membership lives in memory on the writer (a restart makes members rejoin,
//! as a coordinator failover does in Kafka); committed offsets live in the log
//! database (see `opendata_log::LogDb::commit_group_offsets`).
//!
//! A rebalance starts when a member joins, leaves or times out. Every member then has
//! until the rebalance timeout to rejoin; members that do not are dropped. The first
//! member to join becomes the leader; it gets every member's subscription, computes the
//! assignment (assignors are client-side) and hands it over in SyncGroup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Kafka error codes the coordinator answers with.
pub mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
}

/// Coordinator limits.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// Wait for more members after the first joins an empty group.
    pub initial_rebalance_delay: Duration,
    pub max_members: usize,
    pub max_groups: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    client_id: String,
    client_host: String,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    /// Joined the rebalance in progress.
    joined: bool,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    deadline: Option<Instant>,
    /// Changes whenever the group's state does: waiters re-check.
    changed: watch::Sender<u64>,
    version: u64,
}

impl Group {
    fn new() -> Self {
        Self {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            deadline: None,
            changed: watch::channel(0).0,
            version: 0,
        }
    }

    fn bump(&mut self) {
        self.version += 1;
        let v = self.version;
        self.changed.send_replace(v);
    }

    fn start_rebalance(&mut self, now: Instant, delay: Option<Duration>) {
        if self.state != State::PreparingRebalance {
            let wait = delay.unwrap_or_else(|| {
                self.members
                    .values()
                    .map(|m| m.rebalance_timeout)
                    .max()
                    .unwrap_or(Duration::from_secs(1))
            });
            self.state = State::PreparingRebalance;
            self.deadline = Some(now + wait);
            for m in self.members.values_mut() {
                m.joined = false;
            }
        }
        self.bump();
    }

    /// Ends the join phase if every member rejoined or the deadline passed.
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all = !self.members.is_empty() && self.members.values().all(|m| m.joined);
        let late = self.deadline.is_some_and(|d| now >= d);
        if !(all || late) {
            return;
        }
        self.members.retain(|_, m| m.joined);
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation += 1;
            self.leader = None;
            self.protocol = None;
            self.deadline = None;
            self.bump();
            return;
        }
        // The protocol every member supports, in the first member's order of preference.
        let first = self.members.values().next().expect("not empty");
        let chosen = first.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(p, _)| p == n))
        });
        self.protocol = chosen;
        self.generation += 1;
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_seen = now;
        }
        self.state = State::CompletingRebalance;
        self.deadline = None;
        self.bump();
    }
}

/// What a join returns.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A join request.
pub struct Join {
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// Clients from JoinGroup v4 on first get a member id and rejoin with it.
    pub require_known_member: bool,
}

/// A described group.
pub struct Described {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// Every group's membership.
#[derive(Clone)]
pub struct Coordinator {
    groups: Arc<Mutex<BTreeMap<String, Group>>>,
    limits: GroupLimits,
    next_member: Arc<std::sync::atomic::AtomicU64>,
}

impl Coordinator {
    pub fn new(limits: GroupLimits) -> Self {
        let c = Self {
            groups: Arc::default(),
            limits,
            next_member: Arc::default(),
        };
        let weak = Arc::downgrade(&c.groups);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let Some(groups) = weak.upgrade() else { return };
                expire(&mut groups.lock(), Instant::now());
            }
        });
        c
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self
            .next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nonce =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), n);
        format!("{client_id}-{nonce:016x}")
    }

    /// JoinGroup: waits for the rebalance to finish (or the rebalance timeout).
    pub async fn join(&self, req: Join) -> JoinResult {
        let fail = |error: i16| JoinResult {
            error,
            generation: -1,
            member_id: req.member_id.clone(),
            ..Default::default()
        };
        if req.group.is_empty() {
            return fail(code::INVALID_GROUP_ID);
        }
        if req.session_timeout < self.limits.min_session_timeout
            || req.session_timeout > self.limits.max_session_timeout
        {
            return fail(code::INVALID_SESSION_TIMEOUT);
        }
        let member_id;
        let mut rx;
        {
            let mut groups = self.groups.lock();
            if !groups.contains_key(&req.group) && groups.len() >= self.limits.max_groups {
                return fail(code::COORDINATOR_NOT_AVAILABLE);
            }
            let g = groups.entry(req.group.clone()).or_insert_with(Group::new);
            if let Some(pt) = &g.protocol_type
                && !g.members.is_empty()
                && *pt != req.protocol_type
            {
                return fail(code::INCONSISTENT_GROUP_PROTOCOL);
            }
            let now = Instant::now();
            if req.member_id.is_empty() {
                if g.members.len() >= self.limits.max_members {
                    return fail(code::GROUP_MAX_SIZE_REACHED);
                }
                let id = self.new_member_id(&req.client_id);
                if req.require_known_member {
                    // Kafka's two-step join: the client retries with this id.
                    g.members.insert(id.clone(), member(&req, now, false));
                    return JoinResult {
                        error: code::MEMBER_ID_REQUIRED,
                        generation: -1,
                        member_id: id,
                        ..Default::default()
                    };
                }
                member_id = id;
            } else if !g.members.contains_key(&req.member_id) {
                return fail(code::UNKNOWN_MEMBER_ID);
            } else {
                member_id = req.member_id.clone();
            }
            let was_empty = g.state == State::Empty;
            // As in Kafka, a rejoin rebalances when the member's subscription changed,
            // or when it is the leader (which may have seen new topic metadata).
            let changed = g.leader.as_deref() == Some(member_id.as_str())
                || g.members
                    .get(&member_id)
                    .is_none_or(|m| m.protocols != req.protocols || !m.joined);
            let mut m = member(&req, now, true);
            if let Some(old) = g.members.get(&member_id) {
                m.assignment = old.assignment.clone();
            }
            g.members.insert(member_id.clone(), m);
            g.protocol_type = Some(req.protocol_type.clone());
            if g.state != State::PreparingRebalance && (changed || g.state == State::Empty) {
                let delay = was_empty.then_some(self.limits.initial_rebalance_delay);
                g.start_rebalance(now, delay);
                if let Some(m) = g.members.get_mut(&member_id) {
                    m.joined = true;
                }
            }
            if g.state == State::Stable || g.state == State::CompletingRebalance {
                // A rejoin without changes: answer with the current generation.
                return self.join_answer(g, &member_id);
            }
            g.maybe_complete_join(now);
            rx = g.changed.subscribe();
        }
        loop {
            let deadline = {
                let mut groups = self.groups.lock();
                let Some(g) = groups.get_mut(&req.group) else {
                    return fail(code::UNKNOWN_MEMBER_ID);
                };
                let now = Instant::now();
                g.maybe_complete_join(now);
                if !g.members.contains_key(&member_id) {
                    return fail(code::UNKNOWN_MEMBER_ID);
                }
                if g.state != State::PreparingRebalance {
                    return self.join_answer(g, &member_id);
                }
                if let Some(m) = g.members.get_mut(&member_id) {
                    m.last_seen = now;
                }
                g.deadline.unwrap_or(now + Duration::from_millis(100))
            };
            let _ = tokio::time::timeout_at(deadline.into(), rx.changed()).await;
        }
    }

    fn join_answer(&self, g: &Group, member_id: &str) -> JoinResult {
        let leader = g.leader.clone().unwrap_or_default();
        let protocol = g.protocol.clone();
        let members = if leader == member_id {
            g.members
                .iter()
                .map(|(id, m)| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == protocol.as_ref())
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (id.clone(), m.group_instance_id.clone(), meta)
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: if protocol.is_none() {
                code::INCONSISTENT_GROUP_PROTOCOL
            } else {
                code::NONE
            },
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol,
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// SyncGroup: the leader hands in assignments; everyone waits for theirs.
    pub async fn sync(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> (i16, Option<String>, Option<String>, Bytes) {
        let mut rx = {
            let mut groups = self.groups.lock();
            let Some(g) = groups.get_mut(group) else {
                return (code::UNKNOWN_MEMBER_ID, None, None, Bytes::new());
            };
            if !g.members.contains_key(member_id) {
                return (code::UNKNOWN_MEMBER_ID, None, None, Bytes::new());
            }
            if generation != g.generation {
                return (code::ILLEGAL_GENERATION, None, None, Bytes::new());
            }
            if g.state == State::PreparingRebalance {
                return (code::REBALANCE_IN_PROGRESS, None, None, Bytes::new());
            }
            if g.leader.as_deref() == Some(member_id) && g.state == State::CompletingRebalance {
                for (id, a) in assignments {
                    if let Some(m) = g.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                g.state = State::Stable;
                g.bump();
            }
            if let Some(m) = g.members.get_mut(member_id) {
                m.last_seen = Instant::now();
            }
            g.changed.subscribe()
        };
        let limit = Instant::now() + self.limits.max_session_timeout;
        loop {
            {
                let groups = self.groups.lock();
                let Some(g) = groups.get(group) else {
                    return (code::UNKNOWN_MEMBER_ID, None, None, Bytes::new());
                };
                let Some(m) = g.members.get(member_id) else {
                    return (code::UNKNOWN_MEMBER_ID, None, None, Bytes::new());
                };
                if g.generation != generation || g.state == State::PreparingRebalance {
                    return (code::REBALANCE_IN_PROGRESS, None, None, Bytes::new());
                }
                if g.state == State::Stable {
                    return (
                        code::NONE,
                        g.protocol_type.clone(),
                        g.protocol.clone(),
                        m.assignment.clone(),
                    );
                }
            }
            if tokio::time::timeout_at(limit.into(), rx.changed())
                .await
                .is_err()
            {
                return (code::REBALANCE_IN_PROGRESS, None, None, Bytes::new());
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(&self, group: &str, member_id: &str, generation: i32) -> i16 {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        let state = g.state;
        let current = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        m.last_seen = Instant::now();
        if state == State::PreparingRebalance {
            return code::REBALANCE_IN_PROGRESS;
        }
        if generation != current {
            return code::ILLEGAL_GENERATION;
        }
        code::NONE
    }

    /// LeaveGroup for each member id; the error per member.
    pub fn leave(&self, group: &str, members: &[String]) -> Vec<i16> {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return vec![code::UNKNOWN_MEMBER_ID; members.len()];
        };
        let out = members
            .iter()
            .map(|id| {
                if g.members.remove(id).is_some() {
                    code::NONE
                } else {
                    code::UNKNOWN_MEMBER_ID
                }
            })
            .collect();
        after_departure(g, Instant::now());
        out
    }

    /// Checks a commit's generation and member: the error code, `NONE` if allowed.
    /// A commit with generation -1 and no member is a standalone commit (allowed when
    /// the group has no members).
    pub fn check_commit(&self, group: &str, member_id: &str, generation: i32) -> i16 {
        let groups = self.groups.lock();
        let g = groups.get(group);
        if generation < 0 && member_id.is_empty() {
            return match g {
                Some(g) if !g.members.is_empty() => code::UNKNOWN_MEMBER_ID,
                _ => code::NONE,
            };
        }
        let Some(g) = g else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if !g.members.contains_key(member_id) {
            return code::UNKNOWN_MEMBER_ID;
        }
        if g.state == State::CompletingRebalance {
            // Between JoinGroup and SyncGroup nobody holds partitions.
            return code::REBALANCE_IN_PROGRESS;
        }
        if g.generation != generation {
            return code::ILLEGAL_GENERATION;
        }
        // While a rebalance is being prepared, members of the current generation still
        // commit what they consumed before they rejoin (as in Kafka).
        code::NONE
    }

    /// A group's description, `None` if the coordinator does not know it.
    pub fn describe(&self, group: &str) -> Option<Described> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(Described {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (
                        id.clone(),
                        m.group_instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    }

    /// Every group the coordinator knows: (name, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        self.groups
            .lock()
            .iter()
            .map(|(n, g)| {
                (
                    n.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect()
    }

    /// Forgets an empty group: `NON_EMPTY_GROUP` if it has members.
    pub fn remove_if_empty(&self, group: &str) -> i16 {
        let mut groups = self.groups.lock();
        match groups.get(group) {
            Some(g) if !g.members.is_empty() => code::NON_EMPTY_GROUP,
            _ => {
                groups.remove(group);
                code::NONE
            }
        }
    }
}

fn member(req: &Join, now: Instant, joined: bool) -> Member {
    Member {
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        group_instance_id: req.group_instance_id.clone(),
        session_timeout: req.session_timeout,
        rebalance_timeout: req.rebalance_timeout,
        protocols: req.protocols.clone(),
        assignment: Bytes::new(),
        last_seen: now,
        joined,
    }
}

fn after_departure(g: &mut Group, now: Instant) {
    if g.members.is_empty() {
        g.state = State::Empty;
        g.leader = None;
        g.deadline = None;
        g.bump();
    } else {
        g.start_rebalance(now, None);
    }
}

/// Drops members whose session timed out (and pending members that never rejoined).
fn expire(groups: &mut BTreeMap<String, Group>, now: Instant) {
    for g in groups.values_mut() {
        let before = g.members.len();
        let preparing = g.state == State::PreparingRebalance;
        g.members.retain(|_, m| {
            // A member waiting in JoinGroup counts as alive until the rebalance ends.
            (preparing && m.joined) || now.duration_since(m.last_seen) < m.session_timeout
        });
        if g.members.len() != before {
            after_departure(g, now);
        }
        g.maybe_complete_join(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GroupLimits {
        GroupLimits {
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(60),
            initial_rebalance_delay: Duration::from_millis(50),
            max_members: 10,
            max_groups: 10,
        }
    }

    fn join(member_id: &str) -> Join {
        Join {
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(2),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from("meta"))],
            require_known_member: true,
        }
    }

    #[tokio::test]
    async fn should_rebalance_when_a_second_member_joins_and_when_it_leaves() {
        let c = Coordinator::new(limits());
        let first = c.join(join("")).await;
        assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
        let a = first.member_id;
        let ja = c.join(join(&a)).await;
        assert_eq!(ja.error, code::NONE);
        assert_eq!(ja.leader, a);
        let (e, _, _, _) = c
            .sync(
                "g",
                &a,
                ja.generation,
                vec![(a.clone(), Bytes::from("all"))],
            )
            .await;
        assert_eq!(e, code::NONE);

        let b = c.join(join("")).await.member_id;
        let c2 = c.clone();
        let b2 = b.clone();
        let jb = tokio::spawn(async move { c2.join(join(&b2)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            c.heartbeat("g", &a, ja.generation),
            code::REBALANCE_IN_PROGRESS
        );
        let ja2 = c.join(join(&a)).await;
        let jb = jb.await.unwrap();
        assert_eq!(ja2.generation, ja.generation + 1);
        assert_eq!(jb.generation, ja2.generation);
        assert_eq!(ja2.members.len(), 2, "the leader sees both members");

        assert_eq!(c.leave("g", std::slice::from_ref(&b)), vec![code::NONE]);
        assert_eq!(
            c.heartbeat("g", &a, ja2.generation),
            code::REBALANCE_IN_PROGRESS
        );
        let ja3 = c.join(join(&a)).await;
        assert_eq!(ja3.generation, ja2.generation + 1);
        assert_eq!(
            c.check_commit("g", &a, ja3.generation),
            code::REBALANCE_IN_PROGRESS
        );
        c.sync("g", &a, ja3.generation, vec![]).await;
        assert_eq!(
            c.check_commit("g", &a, ja2.generation),
            code::ILLEGAL_GENERATION
        );
        assert_eq!(c.check_commit("g", &a, ja3.generation), code::NONE);
    }

    #[tokio::test]
    async fn should_expire_a_member_that_stops_heartbeating() {
        let c = Coordinator::new(limits());
        let a = c.join(join("")).await.member_id;
        let mut j = join(&a);
        j.session_timeout = Duration::from_millis(200);
        let ja = c.join(j).await;
        assert_eq!(ja.error, code::NONE);
        c.sync("g", &a, ja.generation, vec![]).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(c.heartbeat("g", &a, ja.generation), code::UNKNOWN_MEMBER_ID);
        assert_eq!(c.describe("g").unwrap().state, "Empty");
    }
}
