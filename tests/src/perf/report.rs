//! The benchmark's table: one row per figure, with the tightest baseline
//! that applies and the ratio to it, and the rows that set Conveyor beside
//! Apache Kafka measured in the same run.

use super::baseline::Throughput;
use super::bench::{Measured, Workload};
use super::hist::ms;

pub(crate) struct Table {
    pub(crate) rows: Vec<[String; 4]>,
}

impl Table {
    pub(crate) fn row(
        &mut self,
        workload: impl Into<String>,
        figure: String,
        baseline: String,
        ratio: String,
    ) {
        self.rows.push([workload.into(), figure, baseline, ratio]);
    }

    pub(crate) fn render(&self) -> String {
        let mut s = String::from("| workload | figure | baseline | ratio |\n|---|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!("| {} | {} | {} | {} |\n", r[0], r[1], r[2], r[3]));
        }
        s
    }
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn ratio(figure: f64, baseline: f64) -> String {
    if baseline > 0.0 && figure.is_finite() {
        format!("{:.2}", figure / baseline)
    } else {
        "-".into()
    }
}

pub(crate) fn rec_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M records/s", r / 1e6)
    } else {
        format!("{:.0} records/s", r)
    }
}

/// The tighter of the baselines that apply: (value in MB/s, description).
pub(crate) fn tightest(candidates: &[(Option<f64>, String)]) -> Option<(f64, String)> {
    candidates
        .iter()
        .filter_map(|(v, d)| v.map(|v| (v, d.clone())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

pub(crate) fn report_throughput(what: &str, t: &Result<Throughput, String>) {
    match t {
        Ok(t) => eprintln!("    {}", t.summary(what)),
        Err(e) => eprintln!("    {what}: ERROR: {e}"),
    }
}

pub(crate) fn throughput_figure(t: &Result<Throughput, String>) -> String {
    match t {
        Ok(t) => format!("{:.0} MB/s", t.mb_per_sec()),
        Err(e) => format!("error: {}", one_line(e)),
    }
}

pub(crate) fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").replace('|', "/")
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn add_rows(
    t: &mut Table,
    name: &str,
    w: Workload,
    m: &Result<Measured, String>,
    mock: Option<&Result<Measured, String>>,
    write_mb: Option<f64>,
    sendfile_mb: Option<f64>,
) {
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            t.row(
                name,
                format!("error: {}", one_line(e)),
                "-".into(),
                "-".into(),
            );
            return;
        }
    };
    let mock = mock.and_then(|r| r.as_ref().ok());
    match (w, m) {
        (Workload::E2e { .. } | Workload::E2eWhileCleaning { .. }, Measured::E2e(e)) => {
            let base = match mock {
                Some(Measured::E2e(b)) => Some(b),
                _ => None,
            };
            // The cleaning row's baseline is the same fill with nothing
            // to clean, on the same runtime.
            let base_name = if matches!(w, Workload::E2eWhileCleaning { .. }) {
                "same fill, no cleaning"
            } else {
                "mock"
            };
            let lat = |h: &super::hist::Histogram| {
                format!(
                    "p50 {} / p99 {} / p99.9 {} ms",
                    ms(h.quantile(0.5) as f64),
                    ms(h.quantile(0.99) as f64),
                    ms(h.quantile(0.999) as f64)
                )
            };
            let mut lost = String::new();
            if e.failed > 0 || e.received < e.sent {
                lost = format!(
                    " ({} failed, {} of {} consumed)",
                    e.failed, e.received, e.sent
                );
            }
            t.row(
                format!("{name}: produce-to-ack latency"),
                format!("{}{lost}", lat(&e.ack_latency)),
                base.map_or("-".into(), |b| {
                    format!("{} ({base_name})", lat(&b.ack_latency))
                }),
                base.map_or("-".into(), |b| {
                    ratio(
                        e.ack_latency.quantile(0.99) as f64,
                        b.ack_latency.quantile(0.99) as f64,
                    ) + " (p99)"
                }),
            );
            t.row(
                format!("{name}: produce-to-consume latency"),
                lat(&e.e2e_latency),
                base.map_or("-".into(), |b| {
                    format!("{} ({base_name})", lat(&b.e2e_latency))
                }),
                base.map_or("-".into(), |b| {
                    ratio(
                        e.e2e_latency.quantile(0.99) as f64,
                        b.e2e_latency.quantile(0.99) as f64,
                    ) + " (p99)"
                }),
            );
        }
        (Workload::Recompress { .. }, Measured::Produce(p, _)) => {
            // The baseline is the same produce to a plain topic.
            let base = match mock {
                Some(Measured::Produce(b, _)) => Some(b),
                _ => None,
            };
            let figure = format!(
                "{} ({:.0} MB/s), p99 {} ms",
                rec_rate(p.records_per_sec()),
                p.mb_per_sec(),
                ms(p.latency.quantile(0.99) as f64)
            );
            match base {
                Some(b) => t.row(
                    name,
                    figure,
                    format!(
                        "{} ({:.0} MB/s) plain topic",
                        rec_rate(b.records_per_sec()),
                        b.mb_per_sec()
                    ),
                    ratio(p.mb_per_sec(), b.mb_per_sec()),
                ),
                None => t.row(name, figure, "-".into(), "-".into()),
            }
        }
        (_, Measured::Produce(p, c)) => {
            let (base_p, base_c) = match mock {
                Some(Measured::Produce(bp, bc)) => {
                    (Some(bp), bc.as_ref().and_then(|r| r.as_ref().ok()))
                }
                _ => (None, None),
            };
            let mut figure = format!(
                "{} ({:.0} MB/s), p99 {} ms",
                rec_rate(p.records_per_sec()),
                p.mb_per_sec(),
                ms(p.latency.quantile(0.99) as f64)
            );
            if w == Workload::SingleRecord {
                figure = format!(
                    "{:.0} requests/s, p99 {} ms",
                    p.records_per_sec(),
                    ms(p.latency.quantile(0.99) as f64)
                );
            }
            if p.failed > 0 {
                figure.push_str(&format!(
                    " ({} FAILED: {})",
                    p.failed,
                    one_line(p.first_error.as_deref().unwrap_or("?"))
                ));
            }
            // In MB/s so the client ceiling and the disk compare alike.
            let mut candidates = vec![(
                base_p.map(|b| b.mb_per_sec()),
                base_p.map_or(String::new(), |b| {
                    format!(
                        "{} ({:.0} MB/s) mock",
                        rec_rate(b.records_per_sec()),
                        b.mb_per_sec()
                    )
                }),
            )];
            if w != Workload::SingleRecord {
                candidates.push((
                    write_mb,
                    format!("{:.0} MB/s page-cache write", write_mb.unwrap_or(0.0)),
                ));
            }
            match tightest(&candidates) {
                Some((b, desc)) => t.row(name, figure, desc, ratio(p.mb_per_sec(), b)),
                None => t.row(name, figure, "-".into(), "-".into()),
            }
            if let Some(c) = c {
                let cname = name.replacen(": produce", ": consume (page cache)", 1);
                match c {
                    Err(e) => t.row(
                        cname,
                        format!("error: {}", one_line(e)),
                        "-".into(),
                        "-".into(),
                    ),
                    Ok(c) => {
                        let figure = format!(
                            "{} ({:.0} MB/s), first record {}",
                            rec_rate(c.records_per_sec()),
                            c.mb_per_sec(),
                            c.first_record
                                .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                        );
                        let candidates = [
                            (
                                base_c.map(|b| b.mb_per_sec()),
                                base_c.map_or(String::new(), |b| {
                                    format!(
                                        "{} ({:.0} MB/s) mock",
                                        rec_rate(b.records_per_sec()),
                                        b.mb_per_sec()
                                    )
                                }),
                            ),
                            (
                                sendfile_mb,
                                format!("{:.0} MB/s sendfile", sendfile_mb.unwrap_or(0.0)),
                            ),
                        ];
                        match tightest(&candidates) {
                            Some((b, desc)) => t.row(cname, figure, desc, ratio(c.mb_per_sec(), b)),
                            None => t.row(cname, figure, "-".into(), "-".into()),
                        }
                    }
                }
            }
        }
        _ => t.row(
            name,
            "error: mismatched result".into(),
            "-".into(),
            "-".into(),
        ),
    }
}

/// The rows that set one workload on Conveyor (`m`) beside the same on
/// Kafka (`k`): throughput as Conveyor / Kafka (higher is better for
/// Conveyor), latency as Conveyor / Kafka at p99 (lower is better).
pub(crate) fn peer_rows(
    t: &mut Table,
    name: &str,
    w: Workload,
    m: &Result<Measured, String>,
    k: &Result<Measured, String>,
) {
    let (m, k) = match (m, k) {
        (Ok(m), Ok(k)) => (m, k),
        (Err(e), _) | (_, Err(e)) => {
            t.row(
                name,
                format!("error: {}", one_line(e)),
                "-".into(),
                "-".into(),
            );
            return;
        }
    };
    match (m, k) {
        (Measured::E2e(a), Measured::E2e(b)) => {
            let p99 = |h: &super::hist::Histogram| h.quantile(0.99) as f64;
            t.row(
                format!("{name}: produce-to-ack latency p99"),
                format!("{} ms", ms(p99(&a.ack_latency))),
                format!("{} ms", ms(p99(&b.ack_latency))),
                ratio(p99(&a.ack_latency), p99(&b.ack_latency)),
            );
            t.row(
                format!("{name}: produce-to-consume latency p99"),
                format!("{} ms", ms(p99(&a.e2e_latency))),
                format!("{} ms", ms(p99(&b.e2e_latency))),
                ratio(p99(&a.e2e_latency), p99(&b.e2e_latency)),
            );
        }
        (Measured::Produce(a, ac), Measured::Produce(b, bc)) => {
            let rate = |p: &super::produce::ProduceResult| {
                if w == Workload::SingleRecord {
                    format!("{:.0} requests/s", p.records_per_sec())
                } else {
                    format!(
                        "{} ({:.0} MB/s)",
                        rec_rate(p.records_per_sec()),
                        p.mb_per_sec()
                    )
                }
            };
            t.row(
                name,
                rate(a),
                rate(b),
                ratio(a.records_per_sec(), b.records_per_sec()),
            );
            if let (Some(Ok(ac)), Some(Ok(bc))) = (ac, bc) {
                t.row(
                    name.replacen(": produce", ": consume (page cache)", 1),
                    format!("{:.0} MB/s", ac.mb_per_sec()),
                    format!("{:.0} MB/s", bc.mb_per_sec()),
                    ratio(ac.mb_per_sec(), bc.mb_per_sec()),
                );
            }
        }
        _ => t.row(name, "-".into(), "-".into(), "-".into()),
    }
}
