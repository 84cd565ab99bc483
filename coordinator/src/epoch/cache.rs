//! The coordinator's local cache of the state an epoch hands to the next:
//! the rows in force and the bond segments' entries, in index space.
//!
//! Reading them back from the ledger's Parquet means decoding every row in
//! force and every bond entry each epoch, even when 1 % of rows changed. A
//! run that commits epoch e leaves them here, keyed by the store and by
//! epoch e's committed digest; the run of e + 1 takes them when the ledger's
//! `epochs` row for e carries the same digest, and reads the ledger
//! otherwise. The ledger stays the truth: the cache is never read by
//! `epoch verify`, a miss or a damaged file only costs the slower read, and
//! anything wrong with it is a warning, never a failed epoch.
//!
//! Files hold whole columns, raw and aligned (see [`write`]), so that a
//! reader maps them as they are. An entry grows with what changed: a list
//! (`{epoch}-{digest}.list`) names, in owner order, runs of entries in data
//! files. The rows and segments that changed are laid out, as the epoch
//! merges them, in files of their own mapped in for writing
//! (`{epoch}-{digest}-new.rows.cols`, `….segments.cols`; see [`Arena`]): the
//! entry only seals and names them, and copies nothing. The pieces an
//! epoch kept are slices of the files it mapped, and are recognised as
//! such. When the runs grow too many, it also copies the shortest runs it
//! kept into `{epoch}-{digest}.rows.cols` (or `….segments.cols`); when the
//! files it still needs are too many or hold too much that is no longer
//! used, it copies every entry there instead (see [`Layout::plan`]).
//!
//! Files are written to a temporary name and renamed, so a reader sees the
//! whole file or none (a laid-out file is sealed, its header and checksum
//! written, once its columns are filled and before it is renamed); the
//! list is renamed into place last. Files that no list names any more
//! are kept after it as spares, up to as many bytes as the entry names,
//! and removed past that: an epoch that lays out as much again writes
//! over a spare's pages, already in the page cache, instead of taking
//! fresh ones ([`EpochCache::recycle`]). Files are not fsynced (a
//! gigabyte's fsync was the 1 % epoch's critical path): a CRC-32 in each
//! file's header and at the end of the list catches what a crash left with
//! lost pages, and such an entry is a miss. Only the newest epoch's list is
//! kept per store.

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use std::sync::{Arc, Mutex};

use crate::math::block::Storage;
use crate::math::{Block, Column, Edges, Entries, Rows, Segments};

/// Where one store's cached epochs live.
#[derive(Debug, Clone)]
pub struct EpochCache {
    dir: PathBuf,
}

/// A cache entry being written: see [`EpochCache::start`].
#[derive(Debug)]
pub struct Pending {
    cache: EpochCache,
    epoch: u64,
    tag: String,
    writing: std::thread::JoinHandle<std::io::Result<Written>>,
    started: std::time::Instant,
}

impl Pending {
    /// Waits for the files and names them by the epoch's committed digest.
    /// Failures are logged, not returned: the next run reads the ledger.
    pub fn finish(self, digest: &str) {
        let r = match self.writing.join() {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::other("the writing thread panicked")),
        };
        match r.and_then(|w| self.cache.publish(self.epoch, &self.tag, digest, &w)) {
            Ok(()) => debug!(
                epoch = self.epoch,
                ms = self.started.elapsed().as_millis() as u64,
                "epoch cache written"
            ),
            Err(e) => {
                warn!(dir = %self.cache.dir.display(), error = %e, "could not write the epoch cache; the next epoch reads the ledger instead")
            }
        }
    }
}

/// The cache writer only has to be done by the commit: at a lower priority
/// it takes the cores the epoch's own work leaves idle instead of slowing
/// that work down (on Linux, where a thread has its own nice value).
fn yield_cores() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (`who` = 0) only changes its
    // scheduling; a failure leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// What an epoch hands to the next, as cached: rows in force and the bond
/// segments' entries (holder, peer, bond, weight), both sorted by owner.
#[derive(Debug, Default, Clone)]
pub struct Carried {
    /// Rows in force after the epoch.
    pub rows: Rows,
    /// Segment entries after the epoch (per-holder start and stake come from `state`).
    pub segments: Segments,
    /// The cache files the previous epoch's entry was read from. Pieces
    /// that are slices of them are named, not written again.
    pub from: Sources,
}

/// Data files of this cache, mapped in: kept alive while an epoch runs, so
/// that a piece that lies in one of them is one of its runs (an address
/// cannot be reused while its mapping lives).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    rows: Vec<Mapped>,
    segments: Vec<Mapped>,
}

/// One data file: its name without the table and extension, and its columns.
#[derive(Debug, Clone)]
struct Mapped {
    stem: String,
    u32s: Vec<Column<u32>>,
    f64s: Vec<Column<f64>>,
}

impl Mapped {
    fn len(&self) -> usize {
        self.u32s.first().map_or(0, |c| c.len())
    }

    /// Where `piece` starts in this file, if it is a slice of it.
    fn find(&self, piece: &Piece<'_>) -> Option<usize> {
        let at = |c: &[u8]| c.as_ptr() as usize;
        let (first, len) = (piece.u32s.first()?, piece.len());
        let base = self.u32s.first()?.as_ptr() as usize;
        let off = (first.as_ptr() as usize).checked_sub(base)?;
        let i = off / 4;
        if off % 4 != 0 || i + len > self.len() {
            return None;
        }
        let same_u = (piece.u32s.iter().zip(&self.u32s))
            .all(|(p, m)| at(p.inner().as_slice()) == at(m.inner().as_slice()) + 4 * i);
        let same_f = (piece.f64s.iter().zip(&self.f64s))
            .all(|(p, m)| at(p.inner().as_slice()) == at(m.inner().as_slice()) + 8 * i);
        let whole = piece.u32s.len() == self.u32s.len() && piece.f64s.len() == self.f64s.len();
        (same_u && same_f && whole).then_some(i)
    }
}

/// One piece of a table, by column.
struct Piece<'a> {
    u32s: Vec<&'a Column<u32>>,
    f64s: Vec<&'a Column<f64>>,
}

impl Piece<'_> {
    fn len(&self) -> usize {
        self.u32s.first().map_or(0, |c| c.len())
    }
}

/// A run of entries: `lo..hi` of a data file (`None`: this epoch's).
#[derive(Debug, Clone, PartialEq)]
struct Run {
    file: Option<String>,
    lo: usize,
    hi: usize,
}

/// What an epoch's writer produced: the runs of each table.
#[derive(Debug, Default)]
struct Written {
    rows: Vec<Run>,
    segments: Vec<Run>,
}

/// Past this many runs in one table, an epoch copies the shortest runs it
/// kept into its own file until at most half as many are left: each run
/// is a batch of the plans' tables (tens of microseconds each). The runs
/// between changed owners are about exponentially long, so the shortest
/// half of them holds under a fifth of the entries.
const MAX_RUNS: usize = 8_192;

/// Past this many pieces of carried segments, an epoch lays all its
/// segments out anew as it advances them (`Segments::advance_into`), where
/// its entry would pass [`MAX_RUNS`]: restarted segments fall between kept
/// ones all over the table, so copying the shortest runs would copy nearly
/// all of them, in the writer the commit waits for. (At 4,096 it came
/// every other epoch at 100,000 × 256, where 2.6 % of holders restart a
/// segment each epoch, and cost more than it saved.)
pub const COMPACT_PIECES: usize = MAX_RUNS;

/// Past this many data files named by one table, an epoch rewrites it whole.
const MAX_FILES: usize = 32;

/// How one table of an entry is written: which pieces go into this epoch's
/// file, and the runs the list names.
struct Layout<'a> {
    fresh: Vec<Piece<'a>>,
    runs: Vec<Run>,
    fresh_len: usize,
}

/// Runs and the pieces written, for the kept runs marked `copied` (ids
/// from [`Layout::plan`]) and every piece not in a file.
struct Laid {
    runs: Vec<Run>,
    written: Vec<bool>,
    fresh_len: usize,
}

impl<'a> Layout<'a> {
    /// Pieces that are slices of `from` are runs of those files; the others
    /// are written. Past [`MAX_RUNS`] runs the shortest kept runs are
    /// written too. The whole table is written instead when the files
    /// named would number more than [`MAX_FILES`] or hold more than twice
    /// the entries used, or when at least half the entries are in no file
    /// (new entries that were not laid out in one).
    fn plan(pieces: Vec<Piece<'a>>, from: &[Mapped]) -> Layout<'a> {
        let pieces: Vec<Piece<'a>> = pieces.into_iter().filter(|p| p.len() > 0).collect();
        let total: usize = pieces.iter().map(Piece::len).sum();
        // Each piece: its length, and where it lies in `from`, if it does.
        let found: Vec<(usize, Option<(usize, usize)>)> = pieces
            .iter()
            .map(|p| {
                let at = (from.iter().enumerate()).find_map(|(k, m)| m.find(p).map(|i| (k, i)));
                (p.len(), at)
            })
            .collect();
        // Kept runs: pieces side by side in one file; id and length of each.
        let mut run_id = vec![usize::MAX; found.len()];
        let mut kept_runs: Vec<usize> = vec![];
        let mut last: Option<(usize, usize)> = None;
        for (x, (len, at)) in found.iter().enumerate() {
            let Some((k, i)) = *at else {
                last = None;
                continue;
            };
            match last {
                Some((lk, end)) if lk == k && end == i => {
                    *kept_runs.last_mut().expect("a run") += len
                }
                _ => kept_runs.push(*len),
            }
            run_id[x] = kept_runs.len() - 1;
            last = Some((k, i + len));
        }
        let lay = |copied: &[bool]| -> Laid {
            let mut runs: Vec<Run> = vec![];
            let (mut written, mut fresh_len) = (vec![], 0);
            for (x, (len, at)) in found.iter().enumerate() {
                let keep = at.filter(|_| !copied[run_id[x]]);
                let run = match keep {
                    Some((k, i)) => Run {
                        file: Some(from[k].stem.clone()),
                        lo: i,
                        hi: i + len,
                    },
                    None => {
                        fresh_len += len;
                        Run {
                            file: None,
                            lo: fresh_len - len,
                            hi: fresh_len,
                        }
                    }
                };
                written.push(keep.is_none());
                match runs.last_mut() {
                    Some(l) if l.file == run.file && l.hi == run.lo => l.hi = run.hi,
                    _ => runs.push(run),
                }
            }
            Laid {
                runs,
                written,
                fresh_len,
            }
        };
        let mut laid = lay(&vec![false; kept_runs.len()]);
        if laid.runs.len() > MAX_RUNS {
            // The fewest shortest kept runs that bring the runs to half.
            let mut order: Vec<usize> = (0..kept_runs.len()).collect();
            order.sort_by_key(|r| kept_runs[*r]);
            let mark = |m: usize| {
                let mut c = vec![false; kept_runs.len()];
                order[..m].iter().for_each(|r| c[*r] = true);
                c
            };
            let (mut lo, mut hi) = (0, order.len());
            while lo < hi {
                let m = (lo + hi) / 2;
                if lay(&mark(m)).runs.len() <= MAX_RUNS / 2 {
                    hi = m;
                } else {
                    lo = m + 1;
                }
            }
            laid = lay(&mark(lo));
        }
        let mut named = vec![false; from.len()];
        for (x, (_, at)) in found.iter().enumerate() {
            if let (Some((k, _)), false) = (at, laid.written[x]) {
                named[*k] = true;
            }
        }
        let files = named.iter().filter(|n| **n).count();
        let held: usize = (from.iter().zip(&named))
            .filter(|(_, n)| **n)
            .map(|(m, _)| m.len())
            .sum();
        let kept = total - laid.fresh_len;
        let own = usize::from(laid.fresh_len > 0);
        let whole = files + own > MAX_FILES || held > 2 * kept || 2 * laid.fresh_len >= total;
        if whole {
            return Layout {
                fresh: pieces,
                runs: vec![Run {
                    file: None,
                    lo: 0,
                    hi: total,
                }],
                fresh_len: total,
            };
        }
        Layout {
            fresh: (pieces.into_iter().zip(&laid.written))
                .filter_map(|(p, w)| w.then_some(p))
                .collect(),
            runs: laid.runs,
            fresh_len: laid.fresh_len,
        }
    }
}

/// A provisional name, one per [`Arena`] (a process may close several
/// epochs): files are renamed by the epoch's digest once it is committed.
fn pending_tag() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("pending{}x{n}", std::process::id())
}

/// Whether `name` is a provisional file of another process that is still
/// running: it may still be writing it, so it is neither removed nor made
/// a spare that a third run would write over.
fn laid_out_by_another_run(name: &str) -> bool {
    let Some(rest) = name.split_once("-pending").map(|(_, r)| r) else {
        return false;
    };
    let Some(pid) = rest
        .split_once('x')
        .and_then(|(p, _)| p.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

/// What a laid-out block's stem adds to the writer's own (`{epoch}-{tag}`).
const NEW: &str = "-new";

/// The prefix of a data file kept for reuse ([`EpochCache::recycle`]).
const SPARE: &str = "spare-";

/// Lays out an epoch's new rows and segment entries in this cache's data
/// files ([`Block`]): the entry's writer then names them as runs instead of
/// copying them, and the epoch's fresh pages are the file's. A file that
/// cannot be made is a warning, and that block is in memory.
#[derive(Debug, Clone)]
pub struct Arena {
    cache: EpochCache,
    tag: String,
    stem: String,
    made: Arc<Mutex<Sources>>,
}

impl Arena {
    /// A block for `len` entries of new rows in force.
    pub fn rows(&self, len: usize) -> Block {
        self.block(Table::Rows, len)
    }

    /// A block for `len` entries of segments that start.
    pub fn segments(&self, len: usize) -> Block {
        self.block(Table::Segments, len)
    }

    fn block(&self, table: Table, len: usize) -> Block {
        match LaidOut::create(self, table, len) {
            Ok(b) => Block::new(b),
            Err(e) => {
                warn!(dir = %self.cache.dir.display(), error = %e, "could not lay out new entries in the epoch cache; keeping them in memory");
                Block::in_memory(len, table.floats())
            }
        }
    }
}

/// A data file mapped in for writing: a [`Block`]'s storage.
struct LaidOut {
    map: memmap2::MmapMut,
    len: usize,
    table: Table,
    stem: String,
    made: Arc<Mutex<Sources>>,
}

impl LaidOut {
    fn create(a: &Arena, table: Table, len: usize) -> std::io::Result<LaidOut> {
        std::fs::create_dir_all(&a.cache.dir)?;
        let size = file_size(len, table.floats())
            .ok_or_else(|| std::io::Error::other("too many entries"))?;
        let path = a.cache.file(&a.stem, table.name());
        let reused = a.cache.recycle(&path, size as u64);
        // A spare keeps its pages: no truncation, every column is written
        // over and the header is cleared until the file is sealed.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.set_len(size as u64)?;
        if reused {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&[0u8; ALIGN], 0)?;
        }
        // SAFETY: the file was just made, or a spare renamed, under this
        // run's own provisional name; nothing else writes or truncates it
        // while it is mapped.
        let map = unsafe { memmap2::MmapOptions::new().map_mut(&file)? };
        Ok(LaidOut {
            map,
            len,
            table,
            stem: a.stem.clone(),
            made: a.made.clone(),
        })
    }
}

impl Storage for LaidOut {
    fn columns(&mut self) -> ([&mut [u32]; 2], Vec<&mut [f64]>) {
        let (u, f) = (self.len * 4, self.len * 8);
        let (pu, pf) = (padded(u).expect("sized"), padded(f).expect("sized"));
        let (_, body) = self.map.split_at_mut(ALIGN);
        let (us, mut fs) = body.split_at_mut(2 * pu);
        let (a, b) = us.split_at_mut(pu);
        let mut floats = vec![];
        for _ in 0..self.table.floats() {
            let (c, rest) = std::mem::take(&mut fs).split_at_mut(pf);
            floats.push(cast::<f64>(&mut c[..f]));
            fs = rest;
        }
        ([cast::<u32>(&mut a[..u]), cast::<u32>(&mut b[..u])], floats)
    }

    fn freeze(self: Box<Self>) -> ([Column<u32>; 2], Vec<Column<f64>>) {
        let LaidOut {
            map,
            len,
            table,
            stem,
            made,
        } = *self;
        let buf = arrow::buffer::Buffer::from(bytes::Bytes::from_owner(map));
        let (us, fs) = columns_of(&buf, len, table.floats());
        let m = Mapped {
            stem,
            u32s: us.clone(),
            f64s: fs.clone(),
        };
        let mut made = made.lock().expect("arena lock");
        match table {
            Table::Rows => made.rows.push(m),
            Table::Segments => made.segments.push(m),
        }
        let [a, b] = <[Column<u32>; 2]>::try_from(us).expect("two UInt32 columns");
        ([a, b], fs)
    }
}

/// Bytes of a mapped file as values: the file is page-aligned and every
/// column starts at a multiple of [`ALIGN`], so the cast is aligned.
fn cast<T: arrow::datatypes::ArrowNativeType>(b: &mut [u8]) -> &mut [T] {
    let width = std::mem::size_of::<T>();
    assert!(
        (b.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
            && b.len().is_multiple_of(width),
        "a column of a mapped file is aligned"
    );
    // SAFETY: aligned and sized for T (checked above), and every bit
    // pattern is a valid u32 or f64; the borrow keeps `b` exclusive.
    unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<T>(), b.len() / width) }
}

/// Writes the header of a file laid out by an [`Arena`], whose columns are
/// filled: only then does a reader take it.
fn seal(path: &Path, m: &Mapped) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut crc = crc32fast::Hasher::new();
    m.u32s.iter().for_each(|c| crc.update(c.inner().as_slice()));
    m.f64s.iter().for_each(|c| crc.update(c.inner().as_slice()));
    let head = header(m.len(), m.f64s.len(), crc.finalize());
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all_at(&head, 0)
}

impl EpochCache {
    /// Where `epoch`'s new entries are laid out; hand it to [`EpochCache::start`].
    pub fn arena(&self, epoch: u64) -> Arena {
        let tag = pending_tag();
        Arena {
            cache: self.clone(),
            stem: format!("{epoch}-{tag}{NEW}"),
            tag,
            made: Default::default(),
        }
    }

    /// The cache for `store_url` under `root` (one folder per store, named
    /// by a hash of its URL).
    pub fn new(root: &Path, store_url: &str) -> Self {
        let key = hex::encode(&Sha256::digest(store_url.as_bytes())[..8]);
        Self {
            dir: root.join(key),
        }
    }

    /// The default root: `$XDG_CACHE_HOME/faceblock/epochs`, else
    /// `$HOME/.cache/faceblock/epochs`.
    pub fn default_root() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("faceblock").join("epochs"))
    }

    /// This store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, stem: &str, part: &str) -> PathBuf {
        self.dir.join(format!("{stem}.{part}.cols"))
    }

    fn list(&self, epoch: u64, digest: &str) -> PathBuf {
        self.dir.join(format!("{epoch}-{digest}.list"))
    }

    /// Starts writing what `epoch` hands on, in a thread of its own, under a
    /// provisional name: the state is known once the bonds are advanced,
    /// the digest only after every table is built, and what is written
    /// here need not wait for it. [`Pending::finish`] names it by the digest.
    ///
    /// The blocks `arena` laid out are data files already: the writer only
    /// seals them (header and checksum) and names their entries as runs.
    pub fn start(&self, epoch: u64, mut carried: Carried, arena: &Arena) -> Pending {
        let tag = arena.tag.clone();
        let cache = self.clone();
        let t = std::time::Instant::now();
        let made = std::mem::take(&mut *arena.made.lock().expect("arena lock"));
        let writing = {
            let tag = tag.clone();
            std::thread::spawn(move || {
                yield_cores();
                for (table, files) in [(Table::Rows, &made.rows), (Table::Segments, &made.segments)]
                {
                    for m in files {
                        seal(&cache.file(&m.stem, table.name()), m)?;
                    }
                }
                debug!(
                    ms = t.elapsed().as_millis() as u64,
                    "epoch cache files sealed"
                );
                carried.from.rows.extend(made.rows);
                carried.from.segments.extend(made.segments);
                cache.write_files(&format!("{epoch}-{tag}"), &carried)
            })
        };
        Pending {
            cache: self.clone(),
            epoch,
            tag,
            writing,
            started: t,
        }
    }

    fn write_files(&self, stem: &str, c: &Carried) -> std::io::Result<Written> {
        std::fs::create_dir_all(&self.dir)?;
        let rows = (c.rows.parts.iter())
            .map(|e| Piece {
                u32s: vec![&e.src, &e.dst],
                f64s: vec![&e.weight],
            })
            .collect();
        let segments = (c.segments.parts.iter())
            .map(|p| Piece {
                u32s: vec![&p.holder, &p.peer],
                f64s: vec![&p.bond, &p.weight],
            })
            .collect();
        let mut out = Written::default();
        for (table, pieces, from, runs) in [
            (Table::Rows, rows, &c.from.rows, &mut out.rows),
            (
                Table::Segments,
                segments,
                &c.from.segments,
                &mut out.segments,
            ),
        ] {
            let (part, floats) = (table.name(), table.floats());
            let l = Layout::plan(pieces, from);
            // Nothing to copy (new entries were laid out in a file of
            // their own, or none changed): no file.
            if l.fresh_len > 0 {
                let path = self.file(stem, part);
                if let Some(size) = file_size(l.fresh_len, floats) {
                    self.recycle(&path, size as u64);
                }
                write(
                    &path,
                    l.fresh_len,
                    &(0..2)
                        .map(|c| l.fresh.iter().map(|p| p.u32s[c]).collect())
                        .collect::<Vec<_>>(),
                    &(0..floats)
                        .map(|c| l.fresh.iter().map(|p| p.f64s[c]).collect())
                        .collect::<Vec<_>>(),
                )?;
            }
            debug!(
                table = part,
                written = l.fresh_len,
                runs = l.runs.len(),
                "epoch cache table"
            );
            *runs = l.runs;
        }
        Ok(out)
    }

    /// Names this epoch's files by `digest`, writes the list, and drops
    /// every file no longer named (older epochs, and what a failed run left).
    fn publish(&self, epoch: u64, tag: &str, digest: &str, w: &Written) -> std::io::Result<()> {
        let stem = format!("{epoch}-{digest}");
        let (laid, laid_as) = (format!("{epoch}-{tag}{NEW}"), format!("{stem}{NEW}"));
        let mut text = String::from(LIST_HEAD);
        let mut keep = std::collections::BTreeSet::new();
        for (table, runs) in [(Table::Rows, &w.rows), (Table::Segments, &w.segments)] {
            let part = table.name();
            // Files this epoch made and its list names take their names.
            if runs.iter().any(|r| r.file.is_none()) {
                let copied = format!("{epoch}-{tag}");
                std::fs::rename(self.file(&copied, part), self.file(&stem, part))?;
            }
            if runs.iter().any(|r| r.file.as_deref() == Some(&laid)) {
                std::fs::rename(self.file(&laid, part), self.file(&laid_as, part))?;
            }
            for r in runs {
                let file = match r.file.as_deref() {
                    None => &stem,
                    Some(f) if f == laid => &laid_as,
                    Some(f) => f,
                };
                keep.insert(format!("{file}.{part}.cols"));
                text.push_str(&format!("{part} {file} {} {}\n", r.lo, r.hi));
            }
        }
        text.push_str(&format!("end {:08x}\n", crc32fast::hash(text.as_bytes())));
        let list = self.list(epoch, digest);
        let tmp = list.with_extension("list.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &list)?;
        keep.insert(format!("{stem}.list"));
        let mut named = 0u64;
        let mut unnamed = vec![];
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy().into_owned();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if keep.contains(&name) {
                named += size;
            } else if name.ends_with(".cols") && !laid_out_by_another_run(&name) {
                unnamed.push((name, size));
            } else if name.ends_with(".arrow") || name.ends_with(".list") {
                // `.arrow`: the Arrow IPC files of builds before this format.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        self.keep_spares(unnamed, named);
        Ok(())
    }

    /// Data files no list names any more become spares, the largest first,
    /// up to as many bytes as the newest entry names; the rest are removed.
    ///
    /// A spare's pages are in the page cache already. An epoch that lays
    /// out as many entries overwrites them ([`EpochCache::recycle`]) instead
    /// of taking fresh pages for a new file, and dropping a gigabyte's pages
    /// was a fifth of a second of the commit.
    fn keep_spares(&self, mut unnamed: Vec<(String, u64)>, budget: u64) {
        unnamed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut kept = 0u64;
        for (name, size) in unnamed {
            let path = self.dir.join(&name);
            if kept + size > budget {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            kept += size;
            if !name.starts_with(SPARE) {
                // Named by a hash of the old name: unique, and telling
                // nothing of the epoch it no longer holds.
                let hash = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
                let _ = std::fs::rename(&path, self.dir.join(format!("{SPARE}{hash}.cols")));
            }
        }
    }

    /// Renames into `path` the spare whose size is nearest `size` (from half
    /// to twice it), if there is one: the file then reuses its pages.
    /// Returns whether it did.
    fn recycle(&self, path: &Path, size: u64) -> bool {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        let mut spares: Vec<(u64, PathBuf)> = dir
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(SPARE) && name.ends_with(".cols")
            })
            .filter_map(|e| Some((e.metadata().ok()?.len(), e.path())))
            .filter(|(len, _)| *len >= size / 2 && *len <= size.saturating_mul(2))
            .collect();
        spares.sort_by_key(|(len, p)| (len.abs_diff(size), p.clone()));
        // Another run may take the same spare first: then try the next.
        spares
            .into_iter()
            .any(|(_, spare)| std::fs::rename(spare, path).is_ok())
    }

    /// What `epoch` handed on, if this cache holds it for `digest` and it is
    /// whole; indices are checked against `n` peers.
    pub fn load(&self, epoch: u64, digest: &str, n: usize) -> Option<Carried> {
        let list = self.list(epoch, digest);
        let Ok(text) = std::fs::read_to_string(&list) else {
            debug!(epoch, "no epoch cache entry");
            return None;
        };
        match self.load_list(&text, n) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(file = %list.display(), error = %e, "ignoring a damaged epoch cache entry; reading the ledger");
                None
            }
        }
    }

    fn load_list(&self, text: &str, n: usize) -> std::io::Result<Carried> {
        let runs = parse_list(text)?;
        let mut from = Sources::default();
        let mut rows = Rows::default();
        let mut segments = Segments::default();
        for (part, file, lo, hi) in runs {
            let mapped = match part {
                Table::Rows => &mut from.rows,
                Table::Segments => &mut from.segments,
            };
            let k = match mapped.iter().position(|m| m.stem == file) {
                Some(k) => k,
                None => {
                    let (u32s, f64s) = read(&self.file(&file, part.name()), part.floats())?;
                    let bad = |v: &[u32]| v.iter().any(|i| *i as usize >= n);
                    if u32s.iter().any(|c| bad(c)) {
                        return Err(std::io::Error::other("an index past the registry"));
                    }
                    mapped.push(Mapped {
                        stem: file,
                        u32s,
                        f64s,
                    });
                    mapped.len() - 1
                }
            };
            let m = &mapped[k];
            if lo > hi || hi > m.len() {
                return Err(std::io::Error::other("a run past its file's end"));
            }
            let (u, f) = (&m.u32s, &m.f64s);
            let len = hi - lo;
            match part {
                Table::Rows => rows.parts.push(Edges {
                    src: u[0].slice(lo, len),
                    dst: u[1].slice(lo, len),
                    weight: f[0].slice(lo, len),
                }),
                Table::Segments => segments.parts.push(Entries {
                    holder: u[0].slice(lo, len),
                    peer: u[1].slice(lo, len),
                    bond: f[0].slice(lo, len),
                    weight: f[1].slice(lo, len),
                }),
            }
        }
        Ok(Carried {
            rows,
            segments,
            from,
        })
    }
}

/// The list's first line; its number is the list format's version.
const LIST_HEAD: &str = "faceblock epoch cache 3\n";

/// The two tables of an entry: the rows in force (src, dst; weight) and
/// the segments' entries (holder, peer; bond, weight).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Table {
    Rows,
    Segments,
}

impl Table {
    /// Its name in file names and lists.
    fn name(self) -> &'static str {
        match self {
            Table::Rows => "rows",
            Table::Segments => "segments",
        }
    }

    /// Its Float64 columns (after two UInt32 columns).
    fn floats(self) -> usize {
        match self {
            Table::Rows => 1,
            Table::Segments => 2,
        }
    }
}

/// The runs a list names, in order, after its checksum is checked.
fn parse_list(text: &str) -> std::io::Result<Vec<(Table, String, usize, usize)>> {
    let bad = |what: &str| std::io::Error::other(format!("epoch cache list: {what}"));
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| bad("too short"))?;
    let (body, end) = text.split_at(body_end);
    let crc = end
        .trim_end()
        .strip_prefix("end ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| bad("no checksum line"))?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err(bad("checksum mismatch"));
    }
    let body = body
        .strip_prefix(LIST_HEAD)
        .ok_or_else(|| bad("not this format"))?;
    let mut runs = vec![];
    for line in body.lines() {
        let mut f = line.split(' ');
        let (Some(part), Some(file), Some(lo), Some(hi), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad("a line that is not a run"));
        };
        let part = match part {
            p if p == Table::Rows.name() => Table::Rows,
            p if p == Table::Segments.name() => Table::Segments,
            _ => return Err(bad("an unknown table")),
        };
        // A stem is `{epoch}-{digest}`: nothing that leaves the folder.
        if file.is_empty() || !file.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("a file name that is not a stem"));
        }
        let num = |s: &str| s.parse::<usize>().map_err(|_| bad("a run bound"));
        runs.push((part, file.to_string(), num(lo)?, num(hi)?));
    }
    Ok(runs)
}

/// The format's first bytes; the last is its version.
const MAGIC: &[u8; 8] = b"FBEPOCH\x02";

/// The header's size, and the alignment of every column in the file.
const ALIGN: usize = 64;

fn padded(bytes: usize) -> Option<usize> {
    bytes.checked_next_multiple_of(ALIGN)
}

/// A file's header: magic, entries, column counts (two UInt32 columns,
/// then `floats` Float64 columns) and the CRC-32 of the values in order.
fn header(len: usize, floats: usize, crc: u32) -> [u8; ALIGN] {
    let mut head = [0u8; ALIGN];
    head[..8].copy_from_slice(MAGIC);
    head[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    head[16..20].copy_from_slice(&2u32.to_le_bytes());
    head[20..24].copy_from_slice(&(floats as u32).to_le_bytes());
    head[24..28].copy_from_slice(&crc.to_le_bytes());
    head
}

/// Bytes of a file of `len` entries: header, then each column padded to
/// [`ALIGN`]; `None` past the address space.
fn file_size(len: usize, floats: usize) -> Option<usize> {
    let u = len.checked_mul(4).and_then(padded)?;
    let f = len.checked_mul(8).and_then(padded)?;
    f.checked_mul(floats)?
        .checked_add(u.checked_mul(2)?)?
        .checked_add(ALIGN)
}

/// The columns of a whole file's buffer (sizes checked by the caller).
fn columns_of(buf: &arrow::buffer::Buffer, len: usize, floats: usize) -> Columns {
    let (u, f) = (
        padded(len * 4).expect("sized"),
        padded(len * 8).expect("sized"),
    );
    let us = (0..2)
        .map(|c| Column::<u32>::new(buf.slice_with_length(ALIGN + c * u, len * 4), 0, len))
        .collect();
    let fs = (0..floats)
        .map(|c| {
            Column::<f64>::new(
                buf.slice_with_length(ALIGN + 2 * u + c * f, len * 8),
                0,
                len,
            )
        })
        .collect();
    (us, fs)
}

/// Writes `len` entries: UInt32 columns, then Float64 columns, each given as
/// pieces laid end to end (a segment's entries kept from the previous epoch
/// and those new this epoch), each written straight from its buffers.
///
/// The layout: a header of [`ALIGN`] bytes (magic, entries, column counts,
/// CRC-32 of the values in order), then each column's values in the
/// machine's byte order (the cache never leaves it), each column starting at
/// a multiple of [`ALIGN`] bytes so that a reader maps it as it is.
fn write(
    path: &Path,
    len: usize,
    u32s: &[Vec<&Column<u32>>],
    f64s: &[Vec<&Column<f64>>],
) -> std::io::Result<()> {
    use std::io::Write;
    fn bytes<T: arrow::datatypes::ArrowNativeType>(c: &Column<T>) -> &[u8] {
        c.inner().as_slice()
    }
    let mut crc = crc32fast::Hasher::new();
    for col in u32s {
        col.iter().for_each(|p| crc.update(bytes(p)));
    }
    for col in f64s {
        col.iter().for_each(|p| crc.update(bytes(p)));
    }
    assert_eq!(u32s.len(), 2, "two UInt32 columns");
    let head = header(len, f64s.len(), crc.finalize());
    // Not truncated: a spare recycled under this name keeps its pages, and
    // the file is cut to its size once written.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut f = std::io::BufWriter::with_capacity(1 << 22, file);
    f.write_all(&head)?;
    let zeros = [0u8; ALIGN];
    let mut column = |pieces: Vec<&[u8]>| -> std::io::Result<()> {
        let mut n = 0;
        for p in pieces {
            f.write_all(p)?;
            n += p.len();
        }
        f.write_all(&zeros[..n.next_multiple_of(ALIGN) - n])
    };
    for col in u32s {
        column(col.iter().map(|p| bytes(p)).collect())?;
    }
    for col in f64s {
        column(col.iter().map(|p| bytes(p)).collect())?;
    }
    let file = f.into_inner().map_err(|e| e.into_error())?;
    let size =
        file_size(len, f64s.len()).ok_or_else(|| std::io::Error::other("too many entries"))?;
    file.set_len(size as u64)
}

type Columns = (Vec<Column<u32>>, Vec<Column<f64>>);

/// Two UInt32 columns, then `floats` Float64 columns.
///
/// The file is mapped, not read: the columns are the page cache's pages, so
/// a gigabyte of carried state costs neither a copy nor a gigabyte of fresh
/// memory (first-touch page faults were most of this read). Files are only
/// ever renamed into place, never rewritten, so a mapped file does not change
/// under the reader; the checksum still reads every page once.
fn read(path: &Path, floats: usize) -> std::io::Result<Columns> {
    let bad = |what: &str| std::io::Error::other(format!("epoch cache file: {what}"));
    let file = File::open(path)?;
    // `populate`: the kernel maps every page at once, instead of one fault
    // per 4 KiB page on first touch (a quarter of a million per gigabyte).
    // SAFETY: the cache's files are written to a private temporary name and
    // renamed into place, never truncated or written after that; removing a
    // file leaves an existing mapping intact.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    let buf = arrow::buffer::Buffer::from(bytes::Bytes::from_owner(map));
    if buf.len() < ALIGN || &buf[..8] != MAGIC {
        return Err(bad("not a file of this format"));
    }
    let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    if (word(16), word(20)) != (2, floats as u32) {
        return Err(bad("unexpected columns"));
    }
    let len = usize::try_from(len).map_err(|_| bad("too many entries"))?;
    let whole = file_size(len, floats).ok_or_else(|| bad("too many entries"))?;
    if whole != buf.len() {
        return Err(bad("cut or padded"));
    }
    // Every column starts at a multiple of 64 bytes of a page-aligned map.
    let (us, fs) = columns_of(&buf, len, floats);
    let mut crc = crc32fast::Hasher::new();
    us.iter().for_each(|c| crc.update(c.inner().as_slice()));
    fs.iter().for_each(|c| crc.update(c.inner().as_slice()));
    if crc.finalize() != word(24) {
        return Err(bad("checksum mismatch"));
    }
    Ok((us, fs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried() -> Carried {
        Carried {
            rows: Edges::new(vec![0, 0, 2], vec![1, 2, 0], vec![0.25, 0.75, 1.0]).into(),
            segments: Segments::of(
                Entries {
                    holder: vec![0, 1].into(),
                    peer: vec![2, 0].into(),
                    bond: vec![3.5, 0.0].into(),
                    weight: vec![1.0, -0.0].into(),
                },
                vec![],
                vec![],
            ),
            from: Sources::default(),
        }
    }

    /// Saved, read back bit for bit; another digest, a cut file or an index
    /// past the registry is a miss, never an error.
    #[test]
    fn round_trip_and_misses() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        c.start(4, carried(), &c.arena(4)).finish("abc");
        let got = c.load(4, "abc", 3).expect("hit");
        assert_eq!(got.rows, carried().rows);
        let seg = got.segments.entries();
        assert_eq!(seg.holder, vec![0, 1]);
        assert_eq!(seg.weight[1].to_bits(), (-0.0f64).to_bits());
        assert!(c.load(4, "abd", 3).is_none());
        assert!(c.load(3, "abc", 3).is_none());
        assert!(c.load(4, "abc", 2).is_none(), "uid index 2 past 2 peers");
        // A newer epoch replaces it, and what an older build left.
        std::fs::write(c.dir().join("3-old.rows.arrow"), b"ipc").unwrap();
        c.start(5, carried(), &c.arena(5)).finish("def");
        assert!(c.load(4, "abc", 3).is_none());
        let seg = c.file("5-def", "segments");
        let bytes = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
        assert!(c.load(5, "def", 3).is_none(), "a cut file is a miss");
        // The list and its two files, and epoch 4's two as spares.
        let (spares, named) = folder(&c);
        assert_eq!(named.len(), 3, "{named:?}");
        assert_eq!(spares.len(), 2, "{spares:?}");
        assert!(!c.dir().join("3-old.rows.arrow").exists());
    }

    /// The cache folder's files: spares (name, bytes) and the others' names.
    fn folder(c: &EpochCache) -> (Vec<(String, u64)>, Vec<String>) {
        let (mut spares, mut named) = (vec![], vec![]);
        for e in std::fs::read_dir(c.dir()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(SPARE) {
                spares.push((name, e.metadata().unwrap().len()));
            } else {
                named.push(name);
            }
        }
        spares.sort();
        named.sort();
        (spares, named)
    }

    /// Files no list names any more are kept as spares, up to the bytes the
    /// newest entry names; a block of about a spare's size is laid out over
    /// it (no new file), and the entry reads back as written. A file another
    /// live run is laying out is left alone.
    #[test]
    fn files_no_longer_named_are_laid_out_again() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        let four = epoch_four(&c);
        let four_rows = std::fs::metadata(c.file("4-abc", "rows")).unwrap().len();
        // Another process's provisional file (pid 1 is always running).
        let busy = c.file("5-pending1x0-new", "rows");
        std::fs::write(&busy, b"being written").unwrap();
        // Epoch 5 lays out every row anew: epoch 4's rows file is a spare.
        let lay = |e: u64, base: f64| {
            let arena = c.arena(e);
            let want = rows_of(0..10, base);
            let laid = lay_rows(&arena, &want);
            (arena, laid, want)
        };
        let (arena, laid, want) = lay(5, 9.0);
        assert_eq!(laid, want);
        hand_on_in(&c, &arena, (5, "def"), laid.into(), &four);
        let (spares, named) = folder(&c);
        assert_eq!(spares.len(), 1, "{spares:?} {named:?}");
        assert_eq!(spares[0].1, four_rows, "epoch 4's rows file");
        assert!(busy.exists(), "another run's file is left alone");
        let five = c.load(5, "def", 10).expect("hit");
        assert_eq!(five.rows.entries().into_owned(), want);
        // Epoch 6 lays out as many rows again: over the spare.
        let (arena, laid, want) = lay(6, 77.0);
        assert_eq!(folder(&c).0.len(), 0, "the spare was taken");
        assert_eq!(laid, want);
        hand_on_in(&c, &arena, (6, "ghi"), laid.into(), &five);
        let six = c.load(6, "ghi", 10).expect("hit");
        assert_eq!(six.rows.entries().into_owned(), want);
        // Spares never hold more bytes than the entry names.
        let (spares, named) = folder(&c);
        let held: u64 = named
            .iter()
            .filter(|n| n.ends_with(".cols") && !n.contains("pending1x"))
            .map(|n| std::fs::metadata(c.dir().join(n)).unwrap().len())
            .sum();
        assert!(spares.iter().map(|s| s.1).sum::<u64>() <= held);
        assert_eq!(spares.len(), 1, "epoch 5's rows file: {spares:?}");
    }

    /// Files are not fsynced: a page lost in a crash leaves a whole-looking
    /// file with other values, which the checksum turns into a miss.
    #[test]
    fn a_changed_value_is_a_miss() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        c.start(4, carried(), &c.arena(4)).finish("abc");
        assert!(c.load(4, "abc", 3).is_some());
        let rows = c.file("4-abc", "rows");
        let mut bytes = std::fs::read(&rows).unwrap();
        let at = bytes
            .windows(8)
            .position(|w| w == 0.75f64.to_le_bytes())
            .expect("the weight 0.75 is in the file");
        bytes[at..at + 8].copy_from_slice(&0.5f64.to_le_bytes());
        std::fs::write(&rows, &bytes).unwrap();
        assert!(c.load(4, "abc", 3).is_none(), "a changed weight is a miss");
    }

    fn rows_of(peers: std::ops::Range<u32>, base: f64) -> Edges {
        let src: Vec<u32> = peers.clone().flat_map(|i| [i; 3]).collect();
        let dst: Vec<u32> = peers
            .flat_map(|i| [(i + 1) % 10, (i + 2) % 10, (i + 3) % 10])
            .collect();
        let weight = (0..src.len()).map(|k| base + k as f64).collect();
        Edges::new(src, dst, weight)
    }

    /// Writes epoch `e`'s entry from `rows` and the segments of `prev`,
    /// an entry that was read back, as an epoch run does.
    fn hand_on(c: &EpochCache, at: (u64, &str), rows: Rows, prev: &Carried) {
        hand_on_in(c, &c.arena(at.0), at, rows, prev);
    }

    /// [`hand_on`], with rows that `arena` laid out.
    fn hand_on_in(
        c: &EpochCache,
        arena: &Arena,
        (e, digest): (u64, &str),
        rows: Rows,
        prev: &Carried,
    ) {
        let next = Carried {
            rows,
            segments: prev.segments.clone(),
            from: prev.from.clone(),
        };
        c.start(e, next, arena).finish(digest);
    }

    fn entries_in(c: &EpochCache, stem: &str, part: &str) -> usize {
        let table = [Table::Rows, Table::Segments]
            .into_iter()
            .find(|t| t.name() == part)
            .expect("a table");
        read(&c.file(stem, part), table.floats()).unwrap().0[0].len()
    }

    /// `rows` laid out in a block of `arena`, as `rows::in_force` does.
    fn lay_rows(arena: &Arena, rows: &Edges) -> Edges {
        let mut block = arena.rows(rows.len());
        let ([src, dst], mut w) = block.columns();
        src.copy_from_slice(&rows.src);
        dst.copy_from_slice(&rows.dst);
        w[0].copy_from_slice(&rows.weight);
        let ([src, dst], w) = block.freeze();
        Edges {
            src,
            dst,
            weight: w[0].clone(),
        }
    }

    /// Epoch 4's entry, ten peers' rows of three entries, written whole
    /// and read back.
    fn epoch_four(c: &EpochCache) -> Carried {
        let full = Carried {
            rows: rows_of(0..10, 0.5).into(),
            ..carried()
        };
        c.start(4, full, &c.arena(4)).finish("abc");
        c.load(4, "abc", 10).expect("hit")
    }

    /// New rows laid out by the cache's arena are a data file already: the
    /// entry names them where they lie and copies nothing, reads back the
    /// same, and a run that died after laying out leaves nothing behind
    /// once the next entry is published.
    #[test]
    fn entries_laid_out_in_the_cache_are_named_not_copied() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        let four = epoch_four(&c);
        let arena = c.arena(5);
        let want = rows_of(3..4, 100.0);
        let laid = lay_rows(&arena, &want);
        assert_eq!(laid, want);
        let one = &four.rows.parts[0];
        let next = Rows {
            parts: vec![one.slice(0, 9), laid, one.slice(12, 30)],
        };
        hand_on_in(&c, &arena, (5, "def"), next.clone(), &four);
        assert!(!c.file("5-def", "rows").exists(), "nothing copied");
        assert_eq!(entries_in(&c, "5-def-new", "rows"), 3);
        let five = c.load(5, "def", 10).expect("hit");
        assert_eq!(five.rows, next);
        assert_eq!(five.rows.parts.len(), 3);
        // A run that laid out its rows and died before its entry.
        let names = || -> Vec<String> {
            std::fs::read_dir(c.dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let dead = c.arena(6);
        drop(dead.rows(3).freeze());
        assert!(names().iter().any(|n| n.contains("pending")));
        hand_on(&c, (6, "ghi"), five.rows.clone(), &five);
        assert!(
            names()
                .iter()
                .all(|n| n.starts_with(SPARE) || !n.contains("pending")),
            "{:?}",
            names()
        );
        assert_eq!(c.load(6, "ghi", 10).expect("hit").rows, next);
    }

    /// An epoch that kept most pieces of the entry it read writes only its
    /// new entries and names the rest as runs of the older file; one with
    /// mostly new entries, or one that would keep a file mostly unused,
    /// writes everything and lets the older files go.
    #[test]
    fn an_entry_grows_with_what_changed() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        let four = epoch_four(&c);
        assert_eq!(entries_in(&c, "4-abc", "rows"), 30);
        // Epoch 5: peer 3 sent a new row; the others' rows are kept.
        let kept = four.rows.entries().into_owned();
        assert_eq!(four.rows.parts.len(), 1);
        let one = &four.rows.parts[0];
        let next = Rows {
            parts: vec![one.slice(0, 9), rows_of(3..4, 100.0), one.slice(12, 30)],
        };
        hand_on(&c, (5, "def"), next.clone(), &four);
        assert_eq!(
            entries_in(&c, "5-def", "rows"),
            3,
            "only the new row is written"
        );
        assert!(!c.file("5-def", "segments").exists(), "no segment changed");
        let five = c.load(5, "def", 10).expect("hit");
        assert_eq!(five.rows, next);
        assert_eq!(five.rows.parts.len(), 3);
        assert_eq!(five.segments, four.segments);
        assert_ne!(*five.rows.entries(), kept);
        assert!(c.file("4-abc", "rows").exists(), "still named by epoch 5");
        assert!(!c.list(4, "abc").exists(), "only the newest list is kept");
        // Epoch 6 keeps a third of the rows: the older files would be
        // mostly unused, so everything is written again.
        let few = Rows {
            parts: vec![five.rows.parts[0].clone(), rows_of(9..10, 7.0)],
        };
        hand_on(&c, (6, "ghi"), few.clone(), &five);
        assert_eq!(entries_in(&c, "6-ghi", "rows"), 12);
        let six = c.load(6, "ghi", 10).expect("hit");
        assert_eq!(six.rows, few);
        assert_eq!(six.segments, five.segments);
        // The segments were still all kept: they stay in epoch 4's file.
        assert!(!c.file("6-ghi", "segments").exists());
        assert!(!c.file("4-abc", "rows").exists());
        assert!(!c.file("5-def", "rows").exists());
        assert!(c.file("4-abc", "segments").exists());
        // A list that is changed, or names a file that is gone, is a miss.
        let list = c.list(6, "ghi");
        let text = std::fs::read_to_string(&list).unwrap();
        std::fs::write(&list, text.replace("rows 6-ghi 0 12", "rows 6-ghi 0 11")).unwrap();
        assert!(c.load(6, "ghi", 10).is_none(), "a changed list is a miss");
        std::fs::write(&list, &text).unwrap();
        assert!(c.load(6, "ghi", 10).is_some());
        std::fs::remove_file(c.file("4-abc", "segments")).unwrap();
        assert!(c.load(6, "ghi", 10).is_none(), "a missing file is a miss");
    }

    /// Past [`MAX_RUNS`] runs an epoch also writes the shortest runs it
    /// kept, down to half as many runs, and still names the long ones.
    #[test]
    fn too_many_runs_are_cut_by_writing_the_short_ones() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        // One entry per owner; 6,000 owners change, between runs of 1 or 50.
        let mut changed = vec![];
        let mut at = 0u32;
        for g in 0..6_000 {
            at += if g % 6 == 5 { 50 } else { 1 };
            changed.push(at);
            at += 1;
        }
        let n = at as usize + 10;
        let one = |i: u32, w: f64| Edges::new(vec![i], vec![0], vec![w]);
        let all = Edges::new((0..n as u32).collect(), vec![0; n], vec![0.5; n]);
        c.start(
            4,
            Carried {
                rows: all.into(),
                ..carried()
            },
            &c.arena(4),
        )
        .finish("abc");
        let four = c.load(4, "abc", n).expect("hit");
        let base = four.rows.parts[0].clone();
        let mut parts = vec![];
        let mut from = 0usize;
        for &i in &changed {
            parts.push(base.slice(from, i as usize));
            parts.push(one(i, 0.25));
            from = i as usize + 1;
        }
        parts.push(base.slice(from, n));
        let next = Rows { parts };
        assert!(next.parts.len() > MAX_RUNS);
        hand_on(&c, (5, "def"), next.clone(), &four);
        let list = std::fs::read_to_string(c.list(5, "def")).unwrap();
        let runs = list.lines().filter(|l| l.starts_with("rows ")).count();
        assert!(runs <= MAX_RUNS / 2, "{runs} runs");
        let written = entries_in(&c, "5-def", "rows");
        // The 6,000 new entries and some of the 5,000 runs of one; none of
        // the 1,000 runs of 50.
        assert!(written > 6_000 && written <= 11_000, "{written} written");
        assert!(list.contains("rows 4-abc "), "long runs stay named");
        assert_eq!(c.load(5, "def", n).expect("hit").rows, next);
    }
}
