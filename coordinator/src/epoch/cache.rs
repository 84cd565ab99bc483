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
//! reader maps them as they are and an epoch whose segments are pieces
//! writes them one after another, with no copy in between. They are
//! written to a temporary name and renamed, so a reader sees the whole
//! file or none. They are not
//! fsynced (a gigabyte's fsync was the 1 % epoch's critical path): a CRC-32
//! of the columns in the schema's metadata catches a file that a crash left
//! with lost pages, and such a file is a miss. Only the newest epoch is kept
//! per store.

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::math::{Column, Edges, Entries, Rows, Segments};

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
    writing: std::thread::JoinHandle<std::io::Result<()>>,
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
        match r.and_then(|()| self.cache.publish(self.epoch, &self.tag, digest)) {
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
}

impl EpochCache {
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

    fn file(&self, epoch: u64, digest: &str, part: &str) -> PathBuf {
        self.dir.join(format!("{epoch}-{digest}.{part}.cols"))
    }

    /// Starts writing what `epoch` hands on, in a thread of its own, under a
    /// provisional name: the state is known once the bonds are advanced,
    /// the digest only after every table is built, and the gigabyte written
    /// here need not wait for it. [`Pending::finish`] names it by the digest.
    pub fn start(&self, epoch: u64, carried: Carried) -> Pending {
        let tag = format!("pending{}", std::process::id());
        let cache = self.clone();
        let t = std::time::Instant::now();
        let writing = {
            let tag = tag.clone();
            std::thread::spawn(move || {
                yield_cores();
                cache.write_files(epoch, &tag, &carried)
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

    fn write_files(&self, epoch: u64, tag: &str, c: &Carried) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let r = &c.rows.parts;
        write(
            &self.file(epoch, tag, "rows"),
            c.rows.len(),
            &[
                r.iter().map(|e| &e.src).collect(),
                r.iter().map(|e| &e.dst).collect(),
            ],
            &[r.iter().map(|e| &e.weight).collect()],
        )?;
        let p = &c.segments.parts;
        write(
            &self.file(epoch, tag, "segments"),
            c.segments.len(),
            &[
                p.iter().map(|p| &p.holder).collect(),
                p.iter().map(|p| &p.peer).collect(),
            ],
            &[
                p.iter().map(|p| &p.bond).collect(),
                p.iter().map(|p| &p.weight).collect(),
            ],
        )
    }

    /// Names the provisional files by `digest` and drops every other entry
    /// (older epochs, and what a failed run left).
    fn publish(&self, epoch: u64, tag: &str, digest: &str) -> std::io::Result<()> {
        for part in ["rows", "segments"] {
            std::fs::rename(self.file(epoch, tag, part), self.file(epoch, digest, part))?;
        }
        // Older epochs are never read again.
        let keep = format!("{epoch}-{digest}.");
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // `.arrow`: the Arrow IPC files of builds before this format.
            let ours = name.ends_with(".cols") || name.ends_with(".arrow");
            if ours && !name.starts_with(&keep) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// What `epoch` handed on, if this cache holds it for `digest` and it is
    /// whole; indices are checked against `n` peers.
    pub fn load(&self, epoch: u64, digest: &str, n: usize) -> Option<Carried> {
        let rows = self.file(epoch, digest, "rows");
        let segments = self.file(epoch, digest, "segments");
        if !rows.exists() || !segments.exists() {
            debug!(epoch, "no epoch cache entry");
            return None;
        }
        match read(&rows, 1).and_then(|(mut u, mut f)| {
            let (src, dst) = (u.remove(0), u.remove(0));
            let rows = Edges {
                src,
                dst,
                weight: f.remove(0),
            };
            let (mut u, mut f) = read(&segments, 2)?;
            let (holder, peer) = (u.remove(0), u.remove(0));
            let (bond, weight) = (f.remove(0), f.remove(0));
            let bad = |v: &[u32]| v.iter().any(|i| *i as usize >= n);
            if bad(&rows.src) || bad(&rows.dst) || bad(&holder) || bad(&peer) {
                return Err(std::io::Error::other("an index past the registry"));
            }
            let entries = Entries {
                holder,
                peer,
                bond,
                weight,
            };
            Ok(Carried {
                rows: rows.into(),
                segments: Segments::of(entries, vec![], vec![]),
            })
        }) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(file = %rows.display(), error = %e, "ignoring a damaged epoch cache entry; reading the ledger");
                None
            }
        }
    }
}

/// The format's first bytes; the last is its version.
const MAGIC: &[u8; 8] = b"FBEPOCH\x02";

/// The header's size, and the alignment of every column in the file.
const ALIGN: usize = 64;

fn padded(bytes: usize) -> Option<usize> {
    bytes.checked_next_multiple_of(ALIGN)
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
    let mut head = [0u8; ALIGN];
    head[..8].copy_from_slice(MAGIC);
    head[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    head[16..20].copy_from_slice(&(u32s.len() as u32).to_le_bytes());
    head[20..24].copy_from_slice(&(f64s.len() as u32).to_le_bytes());
    head[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut f = std::io::BufWriter::with_capacity(1 << 22, File::create(path)?);
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
    f.into_inner().map_err(|e| e.into_error())?;
    Ok(())
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
    let size = |width: usize| len.checked_mul(width).and_then(padded);
    let (u, f) = (size(4), size(8));
    let whole = u
        .zip(f)
        .and_then(|(u, f)| f.checked_mul(floats)?.checked_add(u.checked_mul(2)?))
        .and_then(|b| b.checked_add(ALIGN));
    let (Some(u), Some(f)) = (u, f) else {
        return Err(bad("too many entries"));
    };
    if whole != Some(buf.len()) {
        return Err(bad("cut or padded"));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut at = ALIGN;
    let mut next = |width: usize, step: usize| {
        let b = buf.slice_with_length(at, len * width);
        crc.update(b.as_slice());
        at += step;
        b
    };
    // Every column starts at a multiple of 64 bytes of a page-aligned map.
    let us = (0..2)
        .map(|_| Column::<u32>::new(next(4, u), 0, len))
        .collect();
    let fs = (0..floats)
        .map(|_| Column::<f64>::new(next(8, f), 0, len))
        .collect();
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
        }
    }

    /// Saved, read back bit for bit; another digest, a cut file or an index
    /// past the registry is a miss, never an error.
    #[test]
    fn round_trip_and_misses() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        c.start(4, carried()).finish("abc");
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
        c.start(5, carried()).finish("def");
        assert!(c.load(4, "abc", 3).is_none());
        let seg = c.file(5, "def", "segments");
        let bytes = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
        assert!(c.load(5, "def", 3).is_none(), "a cut file is a miss");
        assert_eq!(std::fs::read_dir(c.dir()).unwrap().count(), 2);
    }

    /// Files are not fsynced: a page lost in a crash leaves a whole-looking
    /// file with other values, which the checksum turns into a miss.
    #[test]
    fn a_changed_value_is_a_miss() {
        let root = tempfile::tempdir().unwrap();
        let c = EpochCache::new(root.path(), "file:///net");
        c.start(4, carried()).finish("abc");
        assert!(c.load(4, "abc", 3).is_some());
        let rows = c.file(4, "abc", "rows");
        let mut bytes = std::fs::read(&rows).unwrap();
        let at = bytes
            .windows(8)
            .position(|w| w == 0.75f64.to_le_bytes())
            .expect("the weight 0.75 is in the file");
        bytes[at..at + 8].copy_from_slice(&0.5f64.to_le_bytes());
        std::fs::write(&rows, &bytes).unwrap();
        assert!(c.load(4, "abc", 3).is_none(), "a changed weight is a miss");
    }
}
