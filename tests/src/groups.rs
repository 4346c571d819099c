//! Consumer-group helpers: group members on their own threads that commit
//! synchronously, the broker's view of a group (ListGroups/DescribeGroups
//! with each member's assignment decoded), committed offsets (OffsetFetch),
//! and child processes (kcat, python) that are killed on drop.
//!
//! Everything is bounded in time; a helper that gives up panics with what it
//! saw last.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tempfile::TempDir;

use crate::TestRecord;
use crate::client::{client_config, consumer, consumer_config};

/// Broker settings for group tests: a session can be as short as one second
/// and a new group's first rebalance is not delayed, so a test does not wait
/// for Kafka's production defaults.
pub const GROUP_SETTINGS: &[(&str, &str)] = &[
    ("group.min.session.timeout.ms", "1000"),
    ("group.initial.rebalance.delay.ms", "0"),
];

/// `session.timeout.ms` of every group member the tests start.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(3000);

/// `heartbeat.interval.ms` of every group member the tests start.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// A librdkafka group consumer: `group`, `client.id`, the assignor
/// `strategy` (`range`, `roundrobin`), no auto-commit (the tests commit
/// synchronously), the earliest offset when nothing is committed, and the
/// short [`SESSION_TIMEOUT`].
pub fn group_consumer_config(
    bootstrap: &str,
    group: &str,
    client_id: &str,
    strategy: &str,
) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("client.id", client_id)
        .set("partition.assignment.strategy", strategy)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            HEARTBEAT_INTERVAL.as_millis().to_string(),
        )
        .set("fetch.wait.max.ms", "100");
    config
}

/// The `-X` arguments that make kcat a group member like
/// [`group_consumer_config`]'s (without `enable.auto.commit`, which each
/// test chooses).
pub fn kcat_group_args(bootstrap: &str, client_id: &str, strategy: &str) -> Vec<String> {
    [
        ("broker.address.family", "v4".to_string()),
        ("client.id", client_id.to_string()),
        ("partition.assignment.strategy", strategy.to_string()),
        ("auto.offset.reset", "earliest".to_string()),
        (
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        ),
        (
            "heartbeat.interval.ms",
            HEARTBEAT_INTERVAL.as_millis().to_string(),
        ),
    ]
    .into_iter()
    .flat_map(|(k, v)| ["-X".to_string(), format!("{k}={v}")])
    .chain(["-b".to_string(), bootstrap.to_string()])
    .collect()
}

/// One record a group member handed to the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The [`TestRecord`] index its key names (`None`: not a test key).
    pub index: Option<usize>,
}

/// What a [`GroupMember`] did: every record in the order polled, its
/// current assignment, and anything that went wrong.
#[derive(Debug, Clone, Default)]
pub struct MemberLog {
    /// Records in the order `poll` returned them.
    pub records: Vec<Seen>,
    /// Partitions assigned by the last rebalance (sorted; empty after a
    /// revoke).
    pub assignment: Vec<i32>,
    /// How many assignments the member received.
    pub assignments: usize,
    /// Synchronous commits that failed (other than "nothing to commit").
    pub commit_errors: Vec<String>,
    /// Errors `poll` or a rebalance reported.
    pub errors: Vec<String>,
    /// Successful synchronous commits.
    pub commits: usize,
}

/// Consumer context of a [`GroupMember`]: commits what was processed before
/// partitions are revoked (the eager protocol takes every partition away at
/// each rebalance, and an uncommitted record would be consumed again by its
/// next owner), and records each assignment.
#[derive(Debug, Clone)]
pub struct MemberContext {
    log: Arc<Mutex<MemberLog>>,
}

impl MemberContext {
    fn log(&self) -> MutexGuard<'_, MemberLog> {
        self.log.lock().expect("member log poisoned")
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            commit_processed(consumer, &self.log);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                parts.sort_unstable();
                log.assignment = parts;
                log.assignments += 1;
            }
            Rebalance::Revoke(_) => log.assignment.clear(),
            Rebalance::Error(e) => log.errors.push(format!("rebalance: {e}")),
        }
    }
}

/// Commits the offsets of every record `poll` returned so far, synchronously
/// (librdkafka stores each returned record's offset + 1).
fn commit_processed(consumer: &BaseConsumer<MemberContext>, log: &Mutex<MemberLog>) {
    let result = consumer.commit_consumer_state(CommitMode::Sync);
    let mut log = log.lock().expect("member log poisoned");
    match result {
        Ok(()) => log.commits += 1,
        // Nothing consumed since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => log.commit_errors.push(e.to_string()),
    }
}

/// Records a poll batch holds at most before it is committed.
const BATCH: usize = 200;

/// A librdkafka group member (`subscribe`) polling on its own thread: it
/// takes up to [`BATCH`] records per batch, "processes" each by appending it
/// to its [`MemberLog`], then commits synchronously; it also commits before
/// any revoke. Stopped (consumer closed, so it leaves the group) by
/// [`GroupMember::stop`], on drop, or at its deadline.
#[derive(Debug)]
pub struct GroupMember {
    name: String,
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Starts a member subscribed to `topic`; it runs until stopped or for
    /// at most `limit`.
    pub fn start(name: &str, config: &ClientConfig, topic: &str, limit: Duration) -> GroupMember {
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let context = MemberContext { log: log.clone() };
        let consumer: BaseConsumer<MemberContext> = config
            .create_with_context(context)
            .unwrap_or_else(|e| panic!("create group member {name}: {e}"));
        consumer
            .subscribe(&[topic])
            .unwrap_or_else(|e| panic!("{name}: subscribe to {topic}: {e}"));
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            thread::Builder::new()
                .name(name.to_string())
                .spawn(move || member_loop(&consumer, &log, &stop, limit))
                .expect("spawn a group member thread")
        };
        GroupMember {
            name: name.to_string(),
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// The member's name (its `client.id` in the tests).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of what the member did so far.
    pub fn snapshot(&self) -> MemberLog {
        self.log.lock().expect("member log poisoned").clone()
    }

    /// Asks the member to stop polling without waiting for it (so several
    /// members can be stopped at once).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops polling, closes the consumer (a clean LeaveGroup) and returns
    /// everything the member did.
    pub fn stop(mut self) -> MemberLog {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
            && !thread::panicking()
        {
            panic!("group member {} panicked", self.name);
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.halt();
    }
}

fn member_loop(
    consumer: &BaseConsumer<MemberContext>,
    log: &Mutex<MemberLog>,
    stop: &AtomicBool,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut taken = 0;
        let mut wait = Duration::from_millis(100);
        while taken < BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    log.lock()
                        .expect("member log poisoned")
                        .errors
                        .push(format!("poll: {e}"));
                    break;
                }
                Some(Ok(msg)) => {
                    let seen = Seen {
                        partition: msg.partition(),
                        offset: msg.offset(),
                        index: msg.key().and_then(TestRecord::index_of),
                    };
                    log.lock().expect("member log poisoned").records.push(seen);
                    taken += 1;
                    wait = Duration::ZERO;
                }
            }
        }
        if taken > 0 {
            commit_processed(consumer, log);
        }
    }
}

/// One member as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// The `client.id` it sent.
    pub client_id: String,
    /// Its assignment decoded: partitions of each topic, sorted.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

impl MemberView {
    /// The partitions of `topic` assigned to this member (sorted).
    pub fn partitions(&self, topic: &str) -> Vec<i32> {
        self.assignment.get(topic).cloned().unwrap_or_default()
    }
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// State name (`Stable`, `PreparingRebalance`, `Empty`, ...).
    pub state: String,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// Members, sorted by client id.
    pub members: Vec<MemberView>,
}

impl GroupView {
    /// The member whose `client.id` is `client_id`.
    pub fn member(&self, client_id: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.client_id == client_id)
    }

    /// True when the group is Stable with exactly `members` members whose
    /// assignments of `topic` are each non-empty, pairwise disjoint and
    /// together exactly `0..partitions`.
    pub fn is_stable_split(&self, topic: &str, partitions: i32, members: usize) -> bool {
        if self.state != "Stable" || self.members.len() != members {
            return false;
        }
        let mut all: Vec<i32> = Vec::new();
        for m in &self.members {
            let parts = m.partitions(topic);
            if parts.is_empty() {
                return false;
            }
            all.extend(parts);
        }
        all.sort_unstable();
        all == (0..partitions).collect::<Vec<_>>()
    }
}

/// Decodes a ConsumerProtocolAssignment (any version: version int16, then
/// [topic string, [partition int32]]; user data after that is ignored).
pub fn decode_assignment(bytes: &[u8]) -> Result<BTreeMap<String, Vec<i32>>, String> {
    let mut out = BTreeMap::new();
    if bytes.is_empty() {
        // An empty assignment may be sent as no bytes at all.
        return Ok(out);
    }
    let mut r = Reader { bytes, pos: 0 };
    let version = r.i16()?;
    if version < 0 {
        return Err(format!("assignment version {version}"));
    }
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let len = r.i16()?;
        let name = r.take(usize::try_from(len).map_err(|_| format!("topic length {len}"))?)?;
        let name = String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?;
        let count = r.i32()?;
        let mut parts = Vec::new();
        for _ in 0..count.max(0) {
            parts.push(r.i32()?);
        }
        parts.sort_unstable();
        if out.insert(name.clone(), parts).is_some() {
            return Err(format!("topic {name} twice in one assignment"));
        }
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos + n;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| format!("assignment truncated at byte {}", self.pos))?;
        self.pos = end;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// A client for looking at groups from outside (it never joins one).
pub fn group_observer(bootstrap: &str) -> BaseConsumer {
    consumer(&consumer_config(bootstrap))
}

/// DescribeGroups for `group` through librdkafka's group list.
pub fn describe_group(observer: &BaseConsumer, group: &str) -> Result<GroupView, String> {
    let list = observer
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .map_err(|e| format!("group list: {e}"))?;
    let info = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .ok_or_else(|| format!("group {group} is not in the list"))?;
    let mut members = Vec::new();
    for m in info.members() {
        let assignment = decode_assignment(m.assignment().unwrap_or_default())
            .map_err(|e| format!("member {} ({}): {e}", m.id(), m.client_id()))?;
        members.push(MemberView {
            member_id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            assignment,
        });
    }
    members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(GroupView {
        state: info.state().to_string(),
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        members,
    })
}

/// Describes `group` until `done` accepts the view, at most `timeout`;
/// panics with the last view otherwise. `done` may look at anything else
/// too (the members' own logs).
pub fn wait_for_group(
    observer: &BaseConsumer,
    group: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&GroupView) -> bool,
) -> GroupView {
    let deadline = Instant::now() + timeout;
    let mut last: String;
    loop {
        match describe_group(observer, group) {
            Ok(view) => {
                if done(&view) {
                    return view;
                }
                last = format!("{view:#?}");
            }
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; last view of {group}: {last}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The offsets `group` has committed for `topic`'s partitions
/// `0..partitions` (OffsetFetch), `Offset::Invalid` where none.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Offset> {
    let mut config = consumer_config(bootstrap);
    config.set("group.id", group);
    let c = consumer(&config);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("OffsetFetch for {group}: {e}"));
    (0..partitions)
        .map(|p| {
            let e = got
                .find_partition(topic, p)
                .unwrap_or_else(|| panic!("OffsetFetch for {group} lacks {topic}:{p}"));
            if let Err(err) = e.error() {
                panic!("OffsetFetch for {group}, {topic}:{p}: {err}");
            }
            e.offset()
        })
        .collect()
}

/// Panics with an install hint unless `kcat` runs.
pub fn require_kcat() {
    let out = Command::new("kcat").arg("-V").output().unwrap_or_else(|e| {
        panic!("kcat is not available ({e}); install it with `apt-get install -y kcat` (scripts/test does)")
    });
    assert!(out.status.success(), "`kcat -V` failed: {out:?}");
}

/// A child process whose stdout and stderr go to files in a temporary
/// directory. SIGKILLed and reaped on drop if still running.
#[derive(Debug)]
pub struct LoggedChild {
    what: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

impl LoggedChild {
    /// Spawns `cmd` (its stdin is null). `what` names it in messages.
    pub fn spawn(what: &str, cmd: &mut Command) -> LoggedChild {
        LoggedChild::spawn_with_stdin(what, cmd, None)
    }

    /// Spawns `cmd` reading `input` (if any) on its stdin, then end of file.
    pub fn spawn_with_stdin(what: &str, cmd: &mut Command, input: Option<&[u8]>) -> LoggedChild {
        let dir = tempfile::Builder::new()
            .prefix("conveyor-group-child-")
            .tempdir()
            .expect("temporary directory");
        let stdin = match input {
            None => Stdio::null(),
            Some(bytes) => {
                let path = dir.path().join("stdin");
                fs::write(&path, bytes).expect("write the child's stdin file");
                Stdio::from(File::open(&path).expect("open the child's stdin file"))
            }
        };
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let out = File::create(&stdout).expect("create stdout file");
        let err = File::create(&stderr).expect("create stderr file");
        let child = cmd
            .stdin(stdin)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        LoggedChild {
            what: what.to_string(),
            child: Some(child),
            status: None,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Panics unless the child is still running.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("child already reaped");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early ({status})\nstderr:\n{}",
                self.what,
                self.stderr()
            );
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child already reaped");
        child
            .kill()
            .unwrap_or_else(|e| panic!("SIGKILL {}: {e}", self.what));
        let status = child.wait().expect("reap the child");
        self.status = Some(status);
        status
    }

    /// Waits for the child to exit, at most `timeout`; then SIGKILLs it and
    /// panics with its output.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("child already reaped");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.status = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "{} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    tail(&self.stdout(), 4000),
                    tail(&self.stderr(), 4000)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of `s` (on a char boundary), for messages.
pub fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A JSON value as the test scripts print them: an integer, a string
/// without escapes, or an array of integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonValue {
    /// An integer.
    Int(i64),
    /// A string (no escapes).
    Str(String),
    /// An array of integers.
    Ints(Vec<i64>),
}

/// Parses one flat JSON object line (`{"k": 1, "s": "x", "a": [1, 2]}`) of
/// the shapes [`JsonValue`] covers. `None` for anything else, so a torn or
/// foreign line is noticed by the caller.
pub fn parse_json_line(line: &str) -> Option<BTreeMap<String, JsonValue>> {
    let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let after_quote = rest.strip_prefix('"')?;
        let end = after_quote.find('"')?;
        let key = after_quote[..end].to_string();
        rest = after_quote[end + 1..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let (value, left) = if let Some(s) = rest.strip_prefix('"') {
            let end = s.find('"')?;
            (JsonValue::Str(s[..end].to_string()), &s[end + 1..])
        } else if let Some(s) = rest.strip_prefix('[') {
            let end = s.find(']')?;
            let inner = s[..end].trim();
            let ints = if inner.is_empty() {
                Vec::new()
            } else {
                inner
                    .split(',')
                    .map(|x| x.trim().parse().ok())
                    .collect::<Option<Vec<i64>>>()?
            };
            (JsonValue::Ints(ints), &s[end + 1..])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (
                JsonValue::Int(rest[..end].trim().parse().ok()?),
                &rest[end..],
            )
        };
        out.insert(key, value);
        rest = left.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}
