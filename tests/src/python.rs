//! The Python clients the end-to-end tests drive, and the runner for the
//! scripts in `tests/python/`.
//!
//! A client that python3 cannot import fails the test with the command that
//! installs it (`scripts/test` installs both); nothing is skipped. A script
//! runs with a time limit, its stdout and stderr kept together, and passes
//! only if it exits 0 and prints a line `OK`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::external::run_until_ok;

/// How long one script may run before it is killed and the test fails.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// A Python Kafka client: the module a script imports and the pip package
/// that provides it.
#[derive(Debug, Clone, Copy)]
pub struct PythonClient {
    /// What `import` names (`kafka`).
    pub module: &'static str,
    /// What `pip install` names (`kafka-python`).
    pub package: &'static str,
}

/// kafka-python, the pure-Python client.
pub const KAFKA_PYTHON: PythonClient = PythonClient {
    module: "kafka",
    package: "kafka-python",
};

/// confluent-kafka, the librdkafka-based client (its `AdminClient`,
/// `Producer` and `Consumer`).
pub const CONFLUENT_KAFKA: PythonClient = PythonClient {
    module: "confluent_kafka",
    package: "confluent-kafka",
};

impl PythonClient {
    /// Panics with an install hint unless python3 can import the client.
    pub fn require(&self) {
        let PythonClient { module, package } = *self;
        let out = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "python3 is not available ({e}); install it with \
                     `apt-get install -y python3 python3-pip` then `python3 -m pip install {package}` \
                     (scripts/test does both)"
                )
            });
        assert!(
            out.status.success(),
            "the {package} module is missing for python3; install it with \
             `python3 -m pip install {package}` (scripts/test does this)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Panics with an install hint unless python3 can import kafka-python.
pub fn require_kafka_python() {
    KAFKA_PYTHON.require();
}

/// Run `tests/python/<script>` with `args` after checking that `client` is
/// installed; it must exit 0 and print OK within [`SCRIPT_TIMEOUT`].
/// What it printed; panics with all of it otherwise.
pub fn run_script(client: PythonClient, script: &str, args: &[&str]) -> String {
    client.require();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let mut command = Command::new("python3");
    command.arg(&path).args(args);
    run_until_ok(command, script, SCRIPT_TIMEOUT)
}
