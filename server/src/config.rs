//! The server's configuration: Kafka's `server.properties` format, the
//! settings the server owns (listener, data directory, runtime, advertised
//! address) and, for everything else, [`conveyor_core::Config::set`].

use conveyor_server::Runtime;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use conveyor_core::{Config, ConfigError};

/// The address served with no configuration.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// The data directory with no configuration.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Where `conveyor serve` serves its metrics unless told otherwise
/// (`metrics.listen`; empty turns them off). Redpanda's port.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9644";

/// Kafka settings that a stock single-node `server.properties` carries but
/// that mean nothing here (thread pools, KRaft controller wiring, socket
/// buffer tuning): accepted and ignored, with a warning.
const IGNORED: &[&str] = &[
    "process.roles",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
];

/// A problem with the configuration, ready to print on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

/// `host:port` as configured, resolved when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A name or an IP; empty means every interface.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// Parse `host:port`, `[v6]:port` or `:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("`{port}` in `{s}` is not a port number"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The first address the host resolves to (every interface when empty).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        (host, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{host}` resolves to no address"))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (`listeners`, `--listen`).
    pub listen: HostPort,
    /// The data directory (`log.dirs`, `--data-dir`).
    pub data_dir: PathBuf,
    /// The runtime (`runtime`, `--runtime`).
    pub runtime: Runtime,
    /// The address clients are told to use (`advertised.listeners`); the
    /// listen address when unset.
    pub advertised: Option<HostPort>,
    /// The broker's own settings.
    pub broker: Config,
    /// Things worth a warning at startup (ignored keys, extra directories).
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: HostPort::parse(DEFAULT_LISTEN).expect("the default listen address parses"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            // The benchmarks' fastest (README, Performance): most requests
            // per second, lowest latency and memory of the four.
            runtime: Runtime::Mio,
            advertised: None,
            broker: Config {
                metrics_listen: DEFAULT_METRICS_LISTEN.to_owned(),
                ..Config::default()
            },
            warnings: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// Apply one setting, as `server.properties` spells it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError {
            key: key.to_owned(),
            reason,
        };
        match key {
            "listeners" => self.listen = first_plaintext(value).map_err(bad)?,
            "advertised.listeners" => self.advertised = Some(first_plaintext(value).map_err(bad)?),
            "log.dirs" | "log.dir" => {
                let mut dirs = value.split(',').map(str::trim).filter(|d| !d.is_empty());
                let first = dirs
                    .next()
                    .ok_or_else(|| bad("no directory given".into()))?;
                self.data_dir = PathBuf::from(first);
                if dirs.next().is_some() {
                    self.warnings
                        .push(format!("{key}: only the first directory, {first}, is used"));
                }
            }
            "runtime" => self.runtime = value.parse().map_err(bad)?,
            k if IGNORED.contains(&k) => self
                .warnings
                .push(format!("{key} does not apply to Conveyor; ignored")),
            _ => self.broker.set(key, value)?,
        }
        Ok(())
    }

    /// Apply a `server.properties` file's settings, in order. Errors name
    /// the file and line.
    pub fn load_file(&mut self, path: &Path) -> Result<(), Problem> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem(format!("cannot read {}: {e}", path.display())))?;
        self.load_properties(&text, &path.display().to_string())
    }

    /// Apply the settings in `text`, in `server.properties` syntax; `origin`
    /// names it in errors.
    pub fn load_properties(&mut self, text: &str, origin: &str) -> Result<(), Problem> {
        for entry in parse_properties(text) {
            let (line, key, value) =
                entry.map_err(|(line, e)| Problem(format!("{origin}:{line}: {e}")))?;
            self.set(&key, &value)
                .map_err(|e| Problem(format!("{origin}:{line}: {e}")))?;
        }
        Ok(())
    }

    /// Apply a `--set key=value` override.
    pub fn set_override(&mut self, kv: &str) -> Result<(), Problem> {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| Problem(format!("--set {kv}: expected KEY=VALUE")))?;
        self.set(key.trim(), value.trim())
            .map_err(|e| Problem(format!("--set {kv}: {e}")))
    }

    /// The address clients are told to use: `advertised.listeners`, else the
    /// listen address (loopback when that is every interface).
    pub fn advertised(&self) -> HostPort {
        if let Some(a) = &self.advertised {
            return a.clone();
        }
        let wildcard = matches!(self.listen.host.as_str(), "" | "0.0.0.0" | "::");
        HostPort {
            host: if wildcard {
                "127.0.0.1".into()
            } else {
                self.listen.host.clone()
            },
            port: self.listen.port,
        }
    }
}

/// The first `PLAINTEXT://host:port` of a listener list.
fn first_plaintext(value: &str) -> Result<HostPort, String> {
    for listener in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        let (name, addr) = listener
            .split_once("://")
            .ok_or_else(|| format!("`{listener}` is not NAME://HOST:PORT"))?;
        if name.eq_ignore_ascii_case("PLAINTEXT") {
            return HostPort::parse(addr);
        }
    }
    Err(format!(
        "no PLAINTEXT://HOST:PORT listener in `{value}` (only PLAINTEXT is supported)"
    ))
}

/// One `server.properties` entry: `(line number, key, value)`, or the line
/// number and what is wrong with it.
type Entry = Result<(usize, String, String), (usize, String)>;

/// Split Java properties text into entries: `key=value` or `key: value`,
/// `#` and `!` comments, blank lines, and a trailing `\` continuing a line.
fn parse_properties(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_start();
        let (start, mut logical) = match pending.take() {
            Some((start, so_far)) => (start, so_far + line),
            None => {
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                (line_no, line.to_owned())
            }
        };
        if continues(&logical) {
            logical.pop();
            pending = Some((start, logical));
            continue;
        }
        entries.push(split_entry(start, &logical));
    }
    if let Some((start, logical)) = pending {
        entries.push(split_entry(start, &logical));
    }
    entries
}

/// A line continues when it ends in an odd number of backslashes.
fn continues(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fn split_entry(line_no: usize, logical: &str) -> Entry {
    let Some(at) = logical.find(['=', ':']) else {
        return Err((line_no, format!("`{}` is not KEY=VALUE", logical.trim())));
    };
    let key = logical[..at].trim();
    if key.is_empty() {
        return Err((line_no, "a setting has no key".to_owned()));
    }
    Ok((line_no, key.to_owned(), logical[at + 1..].trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> Result<ServerConfig, Problem> {
        let mut c = ServerConfig::default();
        c.load_properties(text, "server.properties")?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let c = ServerConfig::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(c.data_dir, Path::new("./data"));
        assert_eq!(c.runtime, Runtime::Mio);
        assert_eq!(c.advertised().to_string(), "127.0.0.1:9092");
    }

    #[test]
    fn parses_a_properties_file() {
        let c = loaded(
            "# A comment\n\
             ! another\n\
             \n\
             listeners=PLAINTEXT://:9093,CONTROLLER://:9094\n\
             advertised.listeners = PLAINTEXT://broker.example:19093\n\
             log.dirs=/var/lib/conveyor, /other\n\
             num.partitions: 3\n\
             log.segment.bytes=\\\n    1048576\n\
             num.network.threads=3\n\
             runtime=threads\n",
        )
        .unwrap();
        assert_eq!(
            c.listen,
            HostPort {
                host: String::new(),
                port: 9093
            }
        );
        assert_eq!(c.listen.resolve().unwrap().to_string(), "0.0.0.0:9093");
        assert_eq!(c.advertised().to_string(), "broker.example:19093");
        assert_eq!(c.data_dir, Path::new("/var/lib/conveyor"));
        assert_eq!(c.broker.num_partitions, 3);
        assert_eq!(c.broker.topic_defaults.segment_bytes, 1_048_576);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = loaded("num.partitions=2\n\n# x\nno.such.key=1\n").unwrap_err();
        assert!(e.0.starts_with("server.properties:4: "), "{e}");
        assert!(
            e.0.contains("no.such.key") && e.0.contains("unknown"),
            "{e}"
        );

        let e = loaded("num.partitions=lots").unwrap_err();
        assert!(e.0.contains(":1:") && e.0.contains("num.partitions"), "{e}");

        let e = loaded("a\nlisteners\n").unwrap_err();
        assert!(e.0.starts_with("server.properties:1: "), "{e}");

        let e = loaded("listeners=SSL://:9093").unwrap_err();
        assert!(
            e.0.contains("listeners") && e.0.contains("PLAINTEXT"),
            "{e}"
        );

        let e = loaded("runtime=fibers").unwrap_err();
        assert!(
            e.0.contains("unknown runtime `fibers` (valid: threads, mio, tokio, smol)"),
            "{e}"
        );
        for r in Runtime::ALL {
            let c = loaded(&format!("runtime={}", r.name())).unwrap();
            assert_eq!(c.runtime, r);
        }

        let e = loaded("listeners=PLAINTEXT://host:port").unwrap_err();
        assert!(e.0.contains("not a port number"), "{e}");
    }

    #[test]
    fn overrides_apply_in_order_after_the_file() {
        let mut c = loaded("num.partitions=2\nlisteners=PLAINTEXT://127.0.0.1:9000\n").unwrap();
        c.set_override("num.partitions=5").unwrap();
        c.set_override("num.partitions = 7").unwrap();
        assert_eq!(c.broker.num_partitions, 7);
        c.set_override("listeners=PLAINTEXT://[::1]:9001").unwrap();
        assert_eq!(c.listen.to_string(), "[::1]:9001");
        assert_eq!(c.listen.resolve().unwrap().to_string(), "[::1]:9001");

        let e = c.set_override("num.partitions").unwrap_err();
        assert!(e.0.contains("KEY=VALUE"), "{e}");
        let e = c.set_override("bogus=1").unwrap_err();
        assert!(
            e.0.starts_with("--set bogus=1: ") && e.0.contains("bogus"),
            "{e}"
        );
    }

    #[test]
    fn continuation_and_escapes() {
        let entries = parse_properties("a=1 \\\\\nb=2 \\\n  3\nc=\\");
        let ok: Vec<_> = entries.into_iter().map(Result::unwrap).collect();
        assert_eq!(ok[0], (1, "a".into(), "1 \\\\".into()));
        assert_eq!(ok[1], (2, "b".into(), "2 3".into()));
        assert_eq!(ok[2], (4, "c".into(), String::new()));
    }
}
