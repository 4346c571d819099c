//! The log cleaner's two commands on disk: a cleaned segment's files
//! created under `.cleaned` names, and the crash-safe swap that puts them
//! in place of the segments they replace (see `Command::SwapCleaned`).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use conveyor_core::SegId;

use super::{
    DiskExec, SegmentFiles, remove_file_if_present, resolve, segment_file_name, sync_dir,
    sync_parent,
};

impl DiskExec {
    /// [`Command::SwapCleaned`]'s steps, in its order.
    pub(super) fn swap_cleaned(&self, seg: SegId, replaces: &[SegId]) -> io::Result<()> {
        let new = self.segs.get(seg)?;
        if !new.cleaned.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{seg:?} is not a cleaned segment"),
            ));
        }
        let mut others = Vec::new();
        for r in replaces {
            let old = self.segs.get(*r)?;
            if old.base_offset != new.base_offset {
                others.push((*r, old.base_offset));
            }
        }
        let manifest = new.dir.join(segment_file_name(
            new.base_offset,
            conveyor_core::layout::SWAP,
        ));
        if !others.is_empty() {
            let bases: Vec<u64> = others.iter().map(|(_, b)| *b).collect();
            let text = conveyor_core::layout::encode_swap_manifest(&bases);
            self.write_file(&manifest, text.as_bytes())?;
        }
        // The log first: once its rename is durable the swap has happened
        // (the old log's inode lives on for any reader that has it open).
        let (from, to) = (new.paths(), new.final_paths());
        fs::rename(&from[0], &to[0])?;
        sync_dir(&new.dir)?;
        new.cleaned.store(false, Ordering::Release);
        for (f, t) in from.iter().zip(&to).skip(1) {
            fs::rename(f, t)?;
        }
        drop(new);
        for r in replaces {
            // Taken out once no `sendfile` reads it.
            let old = self.segs.remove(*r)?;
            if others.iter().any(|(o, _)| o == r) {
                for path in old.paths() {
                    remove_file_if_present(&path)?;
                }
            }
        }
        sync_dir(manifest.parent().unwrap_or(Path::new(".")))?;
        if !others.is_empty() {
            remove_file_if_present(&manifest)?;
            sync_parent(&manifest)?;
        }
        Ok(())
    }

    /// A cleaned segment's files, created empty under `.cleaned` names.
    pub(super) fn create_cleaned(&self, seg: SegId, dir: &str, base_offset: u64) -> io::Result<()> {
        let dir = resolve(&self.root, dir)?;
        let open = |ext: &str| {
            let name = segment_file_name(base_offset, ext);
            let path = dir.join(format!("{name}.{}", conveyor_core::layout::CLEANED));
            // Appends land at the end, as for any segment; a file left by
            // an earlier attempt starts empty.
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)
                .and_then(|f| f.set_len(0).map(|()| f))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let files = SegmentFiles {
            log: open(conveyor_core::layout::LOG)?,
            index: open(conveyor_core::layout::INDEX)?,
            timeindex: open(conveyor_core::layout::TIME_INDEX)?,
            dir,
            base_offset,
            cleaned: AtomicBool::new(true),
        };
        self.segs.insert(seg, files);
        Ok(())
    }
}
