//! `cluster`: a three-broker cluster on 127.0.0.1 beside one broker alone,
//! in the same run. Replicated produce throughput (1 KiB records, eight
//! partitions, replication factor 3, `acks=all`) against the single broker's
//! `acks=1` and `acks=all`, and failover: the time from `kill -9` of a
//! partition's leader to the first record acknowledged after it, under a
//! steady `acks=all` producer.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::broker::{Broker, serve_command};
use super::produce::{self, ProduceOpts, ProduceResult};
use super::report::{Table, ratio};
use super::{base_config, create_topic, unique_topic};

/// How to run it.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    /// The `conveyor` binary.
    pub conveyor: PathBuf,
    /// The runtime every broker runs.
    pub runtime: String,
    /// Seconds per throughput workload.
    pub seconds: f64,
    /// Where the data directories go.
    pub dir: PathBuf,
    /// Extra broker settings, `key=value`, for every broker.
    pub broker_settings: Vec<String>,
    /// Failover runs (kill -9 of a leader each).
    pub failovers: usize,
    /// A note printed under the table.
    pub note: Option<String>,
}

/// Three brokers forming a cluster, each with its own directory.
struct Cluster {
    brokers: Vec<Option<Broker>>,
    addrs: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
    voters: String,
}

impl Cluster {
    fn start(opts: &ClusterOpts, work: &Path) -> Result<Cluster, String> {
        let (addrs, voters) = conveyor_tests::loopback_voters(3);
        let dirs: Vec<PathBuf> = (0..3).map(|i| work.join(format!("node-{i}"))).collect();
        let mut c = Cluster {
            brokers: Vec::new(),
            addrs,
            dirs,
            voters,
        };
        for i in 0..3 {
            fs::create_dir_all(&c.dirs[i]).map_err(|e| e.to_string())?;
            let b = c.spawn(opts, i, work)?;
            c.brokers.push(Some(b));
        }
        c.formed(Duration::from_secs(60))?;
        Ok(c)
    }

    fn spawn(&self, opts: &ClusterOpts, i: usize, work: &Path) -> Result<Broker, String> {
        let mut cmd = serve_command(&opts.conveyor, self.addrs[i], &self.dirs[i], &opts.runtime);
        let settings = [
            format!("node.id={i}"),
            format!("controller.quorum.voters={}", self.voters),
            "default.replication.factor=3".into(),
            "min.insync.replicas=2".into(),
            "metrics.listen=".into(),
        ];
        for kv in settings.iter().chain(&opts.broker_settings) {
            cmd.arg("--set").arg(kv);
        }
        let log = work.join(format!("node-{i}.log"));
        let what = format!("conveyor node {i}");
        Broker::spawn(cmd, self.addrs[i], &log, Duration::from_secs(10), &what)
    }

    fn bootstrap(&self) -> String {
        self.addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Until Metadata names three brokers and a controller.
    fn formed(&self, within: Duration) -> Result<(), String> {
        let c: BaseConsumer = base_config(&self.bootstrap())
            .create()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ok = c
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|m| m.brokers().len() == 3);
            let any = self.running().next();
            if ok && any.is_some_and(|i| conveyor_tests::raw::controller_id(self.addrs[i]) >= 0) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "the three brokers did not form a cluster within {within:?}"
        ))
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.brokers.len()).filter(|&i| self.brokers[i].is_some())
    }

    /// The leader of partition 0 of `topic`, once a running broker names one.
    fn leader(&self, topic: &str) -> Result<usize, String> {
        let at = self.running().next().ok_or("no broker running")?;
        let c: BaseConsumer = base_config(&self.addrs[at].to_string())
            .create()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(m) = c.fetch_metadata(Some(topic), Duration::from_secs(2)) {
                let leader = m.topics()[0].partitions().first().map(|p| p.leader());
                if let Some(l) = leader.and_then(|l| usize::try_from(l).ok()) {
                    return Ok(l);
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no leader for {topic}"))
    }

    fn stop(self) {
        for b in self.brokers.into_iter().flatten() {
            b.stop();
        }
    }
}

/// When each acknowledgement came, and the first failure.
#[derive(Clone, Default)]
struct Acks {
    at: Arc<Mutex<(Vec<Instant>, Option<String>)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut a = self.at.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => a.0.push(Instant::now()),
            Err((e, _)) => {
                a.1.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// One failover: a steady acks=all producer to a partition with three
/// replicas, `kill -9` of its leader, and the time until the first
/// acknowledgement after the kill. The killed broker comes back after.
fn failover(c: &mut Cluster, opts: &ClusterOpts, work: &Path) -> Result<Duration, String> {
    let topic = unique_topic("failover");
    // A broker restarted by the previous run is placed on once the
    // controller has heard from it and unfenced it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = create_topic(&c.bootstrap(), &topic, (1, 3), &[]) {
        if Instant::now() > deadline {
            return Err(e);
        }
        thread::sleep(Duration::from_millis(200));
    }
    let acks = Acks::default();
    let mut config = base_config(&c.bootstrap());
    config
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000");
    let p: ThreadedProducer<Acks> = config
        .create_with_context(acks.clone())
        .map_err(|e| format!("producer: {e}"))?;
    let value = [0x61u8; 100];
    let send_for = |p: &ThreadedProducer<Acks>, d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let _ = p.send(BaseRecord::<(), [u8], ()>::to(&topic).payload(&value[..]));
            thread::sleep(Duration::from_millis(1));
        }
    };
    send_for(&p, Duration::from_secs(2));
    let victim = c.leader(&topic)?;
    let killed_at = Instant::now();
    if let Some(mut b) = c.brokers[victim].take() {
        b.kill();
    }
    // Keep sending until an acknowledgement comes after the kill.
    let deadline = killed_at + Duration::from_secs(60);
    let first = loop {
        send_for(&p, Duration::from_millis(50));
        let a = acks.at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = a.0.iter().find(|&&t| t > killed_at) {
            break *t;
        }
        if let Some(e) = &a.1 {
            return Err(format!("a record failed: {e}"));
        }
        if Instant::now() > deadline {
            return Err("no acknowledgement within 60 s of the kill".into());
        }
    };
    let _ = p.flush(Duration::from_secs(30));
    c.brokers[victim] = Some(c.spawn(opts, victim, work)?);
    c.formed(Duration::from_secs(60))?;
    Ok(first.saturating_duration_since(killed_at))
}

fn throughput(bootstrap: &str, acks: &str, rf: i32, seconds: f64) -> Result<ProduceResult, String> {
    let topic = unique_topic("cluster");
    create_topic(bootstrap, &topic, (8, rf), &[])?;
    let mut o = ProduceOpts::new(&topic, u64::MAX, 1024);
    o.partitions = 8;
    o.acks = acks.into();
    o.max_time = Some(Duration::from_secs_f64(seconds));
    o.progress = Duration::ZERO;
    let r = produce::run(&o, bootstrap)?;
    match &r.first_error {
        Some(e) if r.failed > 0 => Err(format!("{} records failed: {e}", r.failed)),
        _ => Ok(r),
    }
}

/// Runs it; the Markdown table.
pub fn run(opts: &ClusterOpts) -> Result<String, String> {
    fs::create_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("conveyor-cluster-bench-")
        .tempdir_in(&opts.dir)
        .map_err(|e| e.to_string())?;
    let ratio_of =
        |r: &Result<ProduceResult, String>, base: &Result<ProduceResult, String>| match (r, base) {
            (Ok(r), Ok(b)) => ratio(r.mb_per_sec(), b.mb_per_sec()),
            _ => "-".into(),
        };
    let figure = |r: &Result<ProduceResult, String>| match r {
        Ok(r) => format!("{:.1} MB/s", r.mb_per_sec()),
        Err(e) => format!("failed: {e}"),
    };

    eprintln!("== one broker ({})", opts.runtime);
    let alone_dir = work.path().join("alone");
    fs::create_dir_all(&alone_dir).map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], conveyor_tests::free_port()));
    let mut cmd = serve_command(&opts.conveyor, addr, &alone_dir, &opts.runtime);
    cmd.arg("--set").arg("metrics.listen=");
    for kv in &opts.broker_settings {
        cmd.arg("--set").arg(kv);
    }
    let alone = Broker::spawn(
        cmd,
        addr,
        &work.path().join("alone.log"),
        Duration::from_secs(10),
        "conveyor alone",
    )?;
    let acks1 = throughput(&addr.to_string(), "1", 1, opts.seconds);
    let acks_all_alone = throughput(&addr.to_string(), "-1", 1, opts.seconds);
    alone.stop();
    let _ = fs::remove_dir_all(&alone_dir);

    eprintln!("== three brokers ({})", opts.runtime);
    let mut c = Cluster::start(opts, work.path())?;
    let replicated = throughput(&c.bootstrap(), "-1", 3, opts.seconds);
    let mut failovers = Vec::new();
    for i in 0..opts.failovers {
        eprintln!("== failover {}", i + 1);
        failovers.push(failover(&mut c, opts, work.path()));
    }
    c.stop();

    let mut t = Table { rows: Vec::new() };
    t.row(
        "1 KiB produce, 8 partitions, acks=1, one broker",
        figure(&acks1),
        "-".into(),
        "-".into(),
    );
    t.row(
        "1 KiB produce, 8 partitions, acks=all, one broker",
        figure(&acks_all_alone),
        "acks=1, one broker".into(),
        ratio_of(&acks_all_alone, &acks1),
    );
    t.row(
        "1 KiB produce, 8 partitions, acks=all, 3 brokers, replication factor 3",
        figure(&replicated),
        "acks=1, one broker".into(),
        ratio_of(&replicated, &acks1),
    );
    for (i, f) in failovers.iter().enumerate() {
        t.row(
            format!(
                "failover {}: kill -9 of a partition's leader to the first acks=all answer after it",
                i + 1
            ),
            match f {
                Ok(d) => format!("{:.2} s", d.as_secs_f64()),
                Err(e) => format!("failed: {e}"),
            },
            "-".into(),
            "-".into(),
        );
    }
    let mut out = t.render();
    out.push_str(&format!(
        "\nRuntime {}, {} s per throughput workload; every broker on 127.0.0.1 with its own \
         data directory; `min.insync.replicas=2` in the cluster.\n",
        opts.runtime, opts.seconds
    ));
    if let Some(note) = &opts.note {
        out.push_str(&format!("{note}\n"));
    }
    Ok(out)
}
