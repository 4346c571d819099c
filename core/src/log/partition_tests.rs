//! Tests of the partition log (`partition.rs`).

use super::*;
use crate::log::batch::{tests::batch, validate_client_batch};
use crate::sim::SimDisk;

fn run(log: &mut PartitionLog, disk: &mut SimDisk, ids: &mut Ids, mut out: Vec<Command>) {
    while !out.is_empty() {
        let mut next = Vec::new();
        for cmd in out {
            let done = disk.execute(&cmd);
            let _ = log.handle_done(done.io, done.result, ids, &mut next);
        }
        out = next;
    }
}

#[test]
fn sealed_segments_keep_only_a_summary_once_mapped() {
    let config = TopicConfig {
        segment_bytes: 300,
        ..TopicConfig::default()
    };
    let (mut ids, mut disk, mut out) = (Ids::default(), SimDisk::default(), Vec::new());
    let mut log = PartitionLog::create("t-0".into(), config, 0, &mut ids, &mut out);
    for i in 0..10 {
        let b = batch(2, i);
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        log.append(Now::default(), b, &h, &mut ids, &mut out)
            .unwrap();
    }
    run(&mut log, &mut disk, &mut ids, std::mem::take(&mut out));
    assert!(log.segments.len() > 2);
    let (active, sealed) = log.segments.split_last().unwrap();
    assert!(
        sealed
            .iter()
            .all(|s| s.batches().is_empty() && s.views.is_some())
    );
    assert!(!active.batches().is_empty());
    assert_eq!(log.high_watermark(), 20);
    assert_eq!(
        log.recovery_point(),
        active.base,
        "rolled segments are synced"
    );
    // Reads go through the mapped files and still find every offset.
    for offset in 0..20 {
        let s = log.read(offset, 1).unwrap().unwrap();
        assert_eq!(s.len, batch(2, 0).len() as u64);
    }
    log.flush(&mut ids, &mut out);
    run(&mut log, &mut disk, &mut ids, out);
    assert_eq!(log.recovery_point(), 20);
}

#[test]
fn one_sync_in_flight_per_segment() {
    let (mut ids, mut out) = (Ids::default(), Vec::new());
    let mut log = PartitionLog::create("t-0".into(), TopicConfig::default(), 0, &mut ids, &mut out);
    let b = batch(1, 0);
    let h = validate_client_batch(&b, 1 << 20).unwrap();
    log.append(Now::default(), b.clone(), &h, &mut ids, &mut out)
        .unwrap();
    log.flush(&mut ids, &mut out);
    log.append(Now::default(), b, &h, &mut ids, &mut out)
        .unwrap();
    log.flush(&mut ids, &mut out);
    let syncs: Vec<IoId> = out
        .iter()
        .filter_map(|c| match c {
            Command::Sync { io, .. } => Some(*io),
            _ => None,
        })
        .collect();
    assert_eq!(syncs.len(), 1, "the second flush waits for the first");
    let mut next = Vec::new();
    for c in &out {
        let _ = log.handle_done(c.io(), Ok(Completion::Unit), &mut ids, &mut next);
    }
    assert_eq!(log.recovery_point(), 1);
    assert!(matches!(next.as_slice(), [Command::Sync { .. }]));
    let _ = log.handle_done(
        next[0].io(),
        Ok(Completion::Unit),
        &mut ids,
        &mut Vec::new(),
    );
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn appends_carry_the_leader_epoch_and_its_checkpoint_survives_a_restart() {
    let (mut ids, mut disk, mut out) = (Ids::default(), SimDisk::default(), Vec::new());
    let mut log = PartitionLog::create("t-0".into(), TopicConfig::default(), 0, &mut ids, &mut out);
    let append = |log: &mut PartitionLog, ids: &mut Ids, out: &mut Vec<Command>, i| {
        let b = batch(2, i);
        let h = validate_client_batch(&b, 1 << 20).unwrap();
        log.append(Now::default(), b, &h, ids, out).unwrap();
    };
    append(&mut log, &mut ids, &mut out, 0);
    log.set_leader_epoch(4);
    append(&mut log, &mut ids, &mut out, 1);
    append(&mut log, &mut ids, &mut out, 2);
    run(&mut log, &mut disk, &mut ids, std::mem::take(&mut out));
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(0, None), Some((0, 2)));
    assert_eq!(log.end_offset_for_epoch(3, None), Some((0, 2)));
    assert_eq!(log.end_offset_for_epoch(4, None), Some((4, 6)));
    // Each batch on disk carries the epoch it was appended in.
    let bytes = disk.file("t-0/00000000000000000000.log").unwrap().to_vec();
    let epochs: Vec<i32> = crate::log::batch::scan(&bytes, 0)
        .map(|(_, h)| h.partition_leader_epoch)
        .collect();
    assert_eq!(epochs, vec![0, 4, 4]);

    let state = disk.disk_state();
    let found = state.partitions.into_iter().next().unwrap();
    assert!(found.leader_epochs.is_some());
    let mut out = Vec::new();
    let back = PartitionLog::recover_partition(
        TopicConfig::default(),
        found,
        None,
        None,
        false,
        &mut ids,
        &mut out,
    );
    assert_eq!(back.log.latest_epoch(), Some(4));
    assert_eq!(back.log.end_offset_for_epoch(4, None), Some((4, 6)));
}
