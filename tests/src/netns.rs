//! A private network for one test, made of Linux network namespaces:
//! hosts that can be cut off from each other while the test (in the
//! machine's own namespace) still reaches every one of them, as a client
//! on the far side of a switch would.
//!
//! ```text
//!   host 0 (10.a.b.1) ──┐
//!   host 1 (10.a.b.2) ──┼── bridge in a hub namespace ── the test (10.a.b.254)
//!   host 2 (10.a.b.3) ──┘
//! ```
//!
//! Each host is a namespace with one veth to the hub's bridge; the test's
//! namespace gets one veth too. [`Lan::cut`] isolates a host from the
//! other hosts with blackhole routes on both sides (packets between them
//! are dropped, and connections time out rather than being refused, as on
//! a real partition), and leaves its path to the test alone.
//! [`Lan::heal`] removes the routes. Everything is removed on drop.
//!
//! Needs root and iproute2's `ip` (`scripts/test` installs it); a missing
//! one fails the test saying so.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The test's own address on every [`Lan`].
const TEST_HOST: u8 = 254;

/// A private network of `hosts` namespaces and the test.
#[derive(Debug)]
pub struct Lan {
    name: String,
    subnet: [u8; 3],
    hosts: usize,
    /// The blackhole routes in place, as (host, peer address).
    cuts: Mutex<Vec<(usize, Ipv4Addr)>>,
}

/// Runs `ip` with `args`, panicking with what it said on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `ip` ({e}): the network tests need iproute2 (`apt-get install iproute2`; scripts/test installs it)")
    });
    assert!(
        out.status.success(),
        "`ip {}` failed (the network tests need root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lan {
    /// Makes the namespaces, the bridge and the links, all up.
    pub fn new(hosts: usize) -> Lan {
        assert!((1..=200).contains(&hosts));
        static LANS: AtomicU32 = AtomicU32::new(0);
        let n = LANS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("cv{pid}x{n}");
        let subnet = [10, 200 + (pid % 50) as u8, (n % 256) as u8];
        let lan = Lan {
            name,
            subnet,
            hosts,
            cuts: Mutex::new(Vec::new()),
        };
        let hub = lan.hub();
        ip(&["netns", "add", &hub]);
        lan.exec(&hub, &["link", "set", "lo", "up"]);
        lan.exec(&hub, &["link", "add", "br0", "type", "bridge"]);
        lan.exec(&hub, &["link", "set", "br0", "up"]);
        for i in 0..hosts {
            let ns = lan.ns(i);
            let port = format!("p{i}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ]);
            let addr = format!("{}/24", lan.ip(i));
            lan.exec(&ns, &["addr", "add", &addr, "dev", "eth0"]);
            lan.exec(&ns, &["link", "set", "eth0", "up"]);
            lan.exec(&ns, &["link", "set", "lo", "up"]);
            lan.exec(&hub, &["link", "set", &port, "master", "br0"]);
            lan.exec(&hub, &["link", "set", &port, "up"]);
        }
        // The test's side: a link named after the process and the lan (at
        // most 15 bytes), its address the last of the subnet.
        let link = lan.test_link();
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "up0", "netns", &hub,
        ]);
        let addr = format!("{}/24", lan.addr(TEST_HOST));
        ip(&["addr", "add", &addr, "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        lan.exec(&hub, &["link", "set", "up0", "master", "br0"]);
        lan.exec(&hub, &["link", "set", "up0", "up"]);
        lan
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.name)
    }

    fn test_link(&self) -> String {
        let mut link = format!(
            "cv{:x}",
            std::process::id() ^ (u32::from(self.subnet[2]) << 24)
        );
        link.truncate(15);
        link
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", ns, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    fn addr(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, last)
    }

    /// Host `i`'s namespace, for `ip netns exec`.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.hosts);
        self.addr(1 + i as u8)
    }

    /// Host `i` can no longer reach the other hosts, nor they it; the test
    /// still reaches all of them.
    pub fn cut(&self, i: usize) {
        let mut cuts = self.cuts.lock().expect("cuts");
        for j in (0..self.hosts).filter(|&j| j != i) {
            for (from, to) in [(i, self.ip(j)), (j, self.ip(i))] {
                let route = format!("{to}/32");
                self.exec(&self.ns(from), &["route", "add", "blackhole", &route]);
                cuts.push((from, to));
            }
        }
    }

    /// Every cut mended.
    pub fn heal(&self) {
        let mut cuts = self.cuts.lock().expect("cuts");
        for (from, to) in cuts.drain(..) {
            let route = format!("{to}/32");
            self.exec(&self.ns(from), &["route", "del", "blackhole", &route]);
        }
    }
}

impl Drop for Lan {
    /// Deleting the namespaces deletes their links, and with the hub's end
    /// of it, the test's link.
    fn drop(&mut self) {
        for ns in (0..self.hosts).map(|i| self.ns(i)).chain([self.hub()]) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.test_link()])
            .output();
    }
}
