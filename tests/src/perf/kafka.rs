//! Apache Kafka as the benchmark's peer: its jars from Maven (once; Maven
//! keeps them in ~/.m2), a single-node KRaft data directory formatted with
//! Kafka's storage tool, and the broker started on 127.0.0.1 with Kafka's
//! defaults, the JVM options its start scripts use (1 GiB heap, G1), and
//! only what a single node needs changed (internal topics at replication
//! factor 1). The same workloads then run
//! against it as against each Conveyor runtime.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::broker::Broker;

/// The Kafka version measured (pinned in `tests/perf/kafka/pom.xml`).
pub const KAFKA_VERSION: &str = "4.4.0";

/// The JVM options Kafka's own start scripts give the broker
/// (`kafka-server-start.sh`'s heap, `kafka-run-class.sh`'s performance
/// options).
const JVM: &[&str] = &[
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

/// How long Kafka may take to accept connections (about 8 s here).
const READY: Duration = Duration::from_secs(60);

/// The pom naming Kafka's jars.
fn pom() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/kafka/pom.xml")
}

/// Kafka's class path, resolved by Maven into `work/kafka-classpath`
/// (downloading the jars the first time).
pub fn classpath(work: &Path) -> Result<String, String> {
    let out = work.join("kafka-classpath");
    let run = Command::new("mvn")
        .args(["-q", "-B", "-f"])
        .arg(pom())
        .arg("dependency:build-classpath")
        .arg(format!("-Dmdep.outputFile={}", out.display()))
        .output()
        .map_err(|e| format!("cannot run mvn (install maven and a JDK 17+): {e}"))?;
    if !run.status.success() {
        let text = String::from_utf8_lossy(&run.stdout).to_string()
            + &String::from_utf8_lossy(&run.stderr);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(format!(
            "mvn could not resolve Kafka {KAFKA_VERSION}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Format `data` as a single-node KRaft directory and start Kafka on it,
/// logging to `log`.
pub fn start(classpath: &str, dir: &Path, log: PathBuf) -> Result<Broker, String> {
    let data = dir.join("kafka-data");
    let _ = fs::remove_dir_all(&data);
    // Both held until both are picked, so the two listeners never share one.
    let held: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let port_of = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port());
    let (port, controller) = (
        port_of(&held[0]).map_err(|e| e.to_string())?,
        port_of(&held[1]).map_err(|e| e.to_string())?,
    );
    drop(held);
    let props = dir.join("kafka-server.properties");
    let text = format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         log.dirs={}\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         # The cleaning workload wants the cleaner to look at once, as\n\
         # Conveyor is told too.\n\
         log.cleaner.backoff.ms=1000\n",
        data.display()
    );
    fs::write(&props, text).map_err(|e| format!("{}: {e}", props.display()))?;
    // Any 16 bytes, as URL-safe base64 without padding: a cluster id.
    let format = Command::new("java")
        .args(["-cp", classpath, "kafka.tools.StorageTool", "format"])
        .args(["-t", "Q29udmV5b3JCZW5jaDAwMA"])
        .arg("-c")
        .arg(&props)
        .output()
        .map_err(|e| format!("cannot run java: {e}"))?;
    if !format.status.success() {
        return Err(format!(
            "Kafka's storage tool failed: {}",
            String::from_utf8_lossy(&format.stderr)
        ));
    }
    let mut cmd = Command::new("java");
    cmd.args(JVM)
        .args(["-cp", classpath, "kafka.Kafka"])
        .arg(&props);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Broker::spawn(cmd, addr, &log, READY, &format!("Kafka {KAFKA_VERSION}"))
}
