//! The segment writer's executor against a real data directory.

use super::*;
use conveyor_core::IoId;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    exec: DiskExec,
    next: u64,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let exec = DiskExec::new(root.clone(), Arc::default());
        Self {
            _tmp: tmp,
            root,
            exec,
            next: 0,
        }
    }

    fn io(&mut self) -> IoId {
        self.next += 1;
        IoId(self.next)
    }

    fn run(
        &mut self,
        make: impl FnOnce(IoId) -> Command,
    ) -> Result<Completion, conveyor_core::IoError> {
        let io = self.io();
        let done = self.exec.execute(make(io));
        assert_eq!(done.io, io);
        done.result
    }

    fn ok(&mut self, make: impl FnOnce(IoId) -> Command) -> Completion {
        self.run(make).unwrap()
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root.join(rel)).unwrap()
    }
}

const SEG: SegId = SegId(1);
const LOG: &str = "t-0/00000000000000000100.log";
const INDEX: &str = "t-0/00000000000000000100.index";
const TIMEINDEX: &str = "t-0/00000000000000000100.timeindex";

fn open(create: bool) -> impl FnOnce(IoId) -> Command {
    move |io| Command::OpenSegment {
        io,
        seg: SEG,
        dir: "t-0".into(),
        base_offset: 100,
        create,
    }
}

#[test]
fn a_cleaned_segment_swaps_in_under_the_old_names() {
    let mut f = Fixture::new();
    f.ok(open(true));
    f.ok(|io| Command::Append {
        io,
        seg: SEG,
        parts: vec![Bytes::from_static(b"old old old")],
    });
    let new = SegId(2);
    let create = |io| Command::CreateCleaned {
        io,
        seg: new,
        dir: "t-0".into(),
        base_offset: 100,
    };
    f.ok(create);
    // Leftovers of an earlier attempt are emptied.
    f.ok(|io| Command::Append {
        io,
        seg: new,
        parts: vec![Bytes::from_static(b"junk")],
    });
    f.ok(create);
    f.ok(|io| Command::Append {
        io,
        seg: new,
        parts: vec![Bytes::from_static(b"new")],
    });
    f.ok(|io| Command::WriteIndex {
        io,
        seg: new,
        offset_index: Bytes::from_static(&[7; 8]),
        time_index: Bytes::new(),
    });
    f.ok(|io| Command::Sync { io, seg: new });
    assert_eq!(f.read(&format!("{LOG}.cleaned")), b"new");
    assert_eq!(f.read(LOG), b"old old old", "nothing swapped yet");
    f.ok(|io| Command::SwapCleaned {
        io,
        seg: new,
        replaces: vec![SEG],
    });
    assert_eq!(f.read(LOG), b"new");
    assert_eq!(f.read(INDEX), [7u8; 8]);
    assert!(!f.root.join(format!("{LOG}.cleaned")).exists());
    assert!(!f.root.join(format!("{TIMEINDEX}.cleaned")).exists());
    // The new segment goes on under its final names; the old is closed.
    f.ok(|io| Command::Append {
        io,
        seg: new,
        parts: vec![Bytes::from_static(b"!")],
    });
    assert_eq!(f.read(LOG), b"new!");
    assert!(f.run(|io| Command::Sync { io, seg: SEG }).is_err());
    assert!(
        f.run(|io| Command::SwapCleaned {
            io,
            seg: new,
            replaces: vec![SEG]
        })
        .is_err(),
        "a segment swaps once"
    );
    f.ok(|io| Command::RemoveSegment { io, seg: new });
    assert!(!f.root.join(LOG).exists());
}

#[test]
fn segment_lifecycle() {
    let mut f = Fixture::new();
    f.ok(open(true));
    assert!(f.read(LOG).is_empty() && f.read(INDEX).is_empty() && f.read(TIMEINDEX).is_empty());

    let parts = vec![
        Bytes::from_static(b"abc"),
        Bytes::new(),
        Bytes::from_static(b"defg"),
    ];
    f.ok(|io| Command::Append {
        io,
        seg: SEG,
        parts,
    });
    f.ok(|io| Command::Append {
        io,
        seg: SEG,
        parts: vec![Bytes::from_static(b"hi")],
    });
    assert_eq!(f.read(LOG), b"abcdefghi");

    f.ok(|io| Command::WriteIndex {
        io,
        seg: SEG,
        offset_index: Bytes::from_static(&[1; 8]),
        time_index: Bytes::new(),
    });
    f.ok(|io| Command::WriteIndex {
        io,
        seg: SEG,
        offset_index: Bytes::from_static(&[2; 8]),
        time_index: Bytes::from_static(&[3; 12]),
    });
    assert_eq!(f.read(INDEX), [[1u8; 8], [2; 8]].concat());
    assert_eq!(f.read(TIMEINDEX), [3u8; 12]);
    f.ok(|io| Command::Sync { io, seg: SEG });

    f.ok(|io| Command::Truncate {
        io,
        seg: SEG,
        log_len: 4,
        index_len: 8,
        timeindex_len: 0,
    });
    assert_eq!(f.read(LOG), b"abcd");
    assert_eq!(f.read(INDEX), [1u8; 8]);
    assert!(f.read(TIMEINDEX).is_empty());
    // Appends after a truncation continue at the new end.
    f.ok(|io| Command::Append {
        io,
        seg: SEG,
        parts: vec![Bytes::from_static(b"X")],
    });
    assert_eq!(f.read(LOG), b"abcdX");

    let Completion::Mapped(views) = f.ok(|io| Command::MapSegment { io, seg: SEG }) else {
        panic!("MapSegment answers with Mapped");
    };
    assert_eq!((*views.log).as_ref(), b"abcdX");
    assert_eq!((*views.index).as_ref(), [1u8; 8]);
    assert!((*views.timeindex).as_ref().is_empty());

    f.ok(|io| Command::RemoveSegment { io, seg: SEG });
    assert!(!f.root.join(LOG).exists() && !f.root.join(INDEX).exists());
    // The mapping outlives the file's name.
    assert_eq!((*views.log).as_ref(), b"abcdX");
    // The segment is gone: commands naming it fail, without panicking.
    let e = f.run(|io| Command::Sync { io, seg: SEG }).unwrap_err();
    assert_eq!(e.kind, io::ErrorKind::NotFound);
}

#[test]
fn open_existing() {
    let mut f = Fixture::new();
    // Startup: the log must exist.
    let e = f.run(open(false)).unwrap_err();
    assert_eq!(e.kind, io::ErrorKind::NotFound);
    fs::create_dir(f.root.join("t-0")).unwrap();
    fs::write(f.root.join(LOG), b"old").unwrap();
    f.ok(open(false));
    // Missing indexes were created empty; the log is appended to, not replaced.
    assert!(f.read(INDEX).is_empty());
    f.ok(|io| Command::Append {
        io,
        seg: SEG,
        parts: vec![Bytes::from_static(b"new")],
    });
    assert_eq!(f.read(LOG), b"oldnew");
    // Creating over existing files truncates nothing.
    f.ok(open(true));
    assert_eq!(f.read(LOG), b"oldnew");
}

#[test]
fn files_and_dirs() {
    let mut f = Fixture::new();
    let write = |path: &str, b: &'static [u8]| {
        let path = path.to_owned();
        move |io| Command::WriteFile {
            io,
            path,
            bytes: Bytes::from_static(b),
        }
    };
    f.ok(write("checkpoint", b"one"));
    f.ok(write("checkpoint", b"two"));
    assert_eq!(f.read("checkpoint"), b"two");
    assert!(!f.root.join("checkpoint.tmp").exists());
    f.ok(write("new-dir/partition.metadata", b"m"));
    assert_eq!(f.read("new-dir/partition.metadata"), b"m");

    f.ok(|io| Command::RemoveFile {
        io,
        path: "checkpoint".into(),
    });
    assert!(!f.root.join("checkpoint").exists());
    // Removing what is not there is success.
    f.ok(|io| Command::RemoveFile {
        io,
        path: "checkpoint".into(),
    });
    f.ok(|io| Command::RemoveDir {
        io,
        dir: "new-dir".into(),
    });
    assert!(!f.root.join("new-dir").exists());
    f.ok(|io| Command::RemoveDir {
        io,
        dir: "new-dir".into(),
    });

    // Paths outside the data directory are refused.
    let e = f.run(write("../escape", b"x")).unwrap_err();
    assert_eq!(e.kind, io::ErrorKind::InvalidInput);
    let e = f
        .run(|io| Command::RemoveDir {
            io,
            dir: "/".into(),
        })
        .unwrap_err();
    assert_eq!(e.kind, io::ErrorKind::InvalidInput);
    // A socket command is an error, not a panic.
    let e = f
        .run(|io| Command::Close {
            io,
            conn: conveyor_core::ConnId(1),
        })
        .unwrap_err();
    assert_eq!(e.kind, io::ErrorKind::Unsupported);
}

#[test]
fn group_commit_answers_syncs_from_the_fsync_worker() {
    let mut f = Fixture::new();
    f.ok(open(true));
    let segs = Arc::clone(&f.exec.segs);
    let (tx, rx) = mpsc::channel();
    let writer = SegmentWriter::start(DiskExec::new(f.root.clone(), Arc::clone(&segs)), {
        let tx = tx.clone();
        move |dones| {
            for d in dones {
                let _ = tx.send(d);
            }
        }
    })
    .unwrap();
    let append = |io| Command::Append {
        io,
        seg: SEG,
        parts: vec![Bytes::from_static(b"abc")],
    };
    let (a1, s1, a2) = (f.io(), f.io(), f.io());
    assert!(writer.execute(append(a1)).unwrap().result.is_ok());
    // Handed over: the writer answers nothing and goes on.
    assert!(writer.execute(Command::Sync { io: s1, seg: SEG }).is_none());
    assert!(writer.execute(append(a2)).unwrap().result.is_ok());
    let done = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(done.io, s1);
    assert!(done.result.is_ok());

    // A removal waits for a sync handed over before it, and a sync of
    // a segment that is not open is answered at once, with an error.
    let (s2, rm, s3) = (f.io(), f.io(), f.io());
    assert!(writer.execute(Command::Sync { io: s2, seg: SEG }).is_none());
    let removed = writer.execute(Command::RemoveSegment { io: rm, seg: SEG });
    assert!(removed.unwrap().result.is_ok());
    assert!(!f.root.join(LOG).exists());
    let done = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(done.io, s2);
    let e = writer.execute(Command::Sync { io: s3, seg: SEG }).unwrap();
    assert_eq!(e.result.unwrap_err().kind, io::ErrorKind::NotFound);

    // Dropping the writer stops its worker; nothing is left unanswered.
    drop(writer);
    drop(tx);
    assert!(rx.recv().is_err());
}

#[test]
fn vectored_writes_survive_partial_writes() {
    /// Takes at most 3 bytes per call.
    struct Dribble(Vec<u8>);
    impl Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let bufs: Vec<Bytes> = (0..2000u32).map(|i| Bytes::from(i.to_string())).collect();
    let mut out = Dribble(Vec::new());
    write_all_vectored(&mut out, &bufs).unwrap();
    assert_eq!(out.0, bufs.concat());
}
