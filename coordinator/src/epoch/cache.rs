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
//! Files are Arrow IPC, one batch of whole columns, written to a temporary
//! name and renamed, so a reader sees the whole file or none. They are not
//! fsynced (a gigabyte's fsync was the 1 % epoch's critical path): a CRC-32
//! of the columns in the schema's metadata catches a file that a crash left
//! with lost pages, and such a file is a miss. Only the newest epoch is kept
//! per store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt32Type};
use arrow::ipc::writer::FileWriter;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::math::{Column, Edges, Segments};

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
    pub rows: Edges,
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
        self.dir.join(format!("{epoch}-{digest}.{part}.arrow"))
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
        let r = &c.rows;
        write(
            &self.file(epoch, tag, "rows"),
            &[("src", &r.src), ("dst", &r.dst)],
            &[("weight", &r.weight)],
        )?;
        let s = &c.segments;
        write(
            &self.file(epoch, tag, "segments"),
            &[("holder", &s.holder), ("peer", &s.peer)],
            &[("bond", &s.bond), ("weight", &s.weight)],
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
            if name.ends_with(".arrow") && !name.starts_with(&keep) {
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
            let segments = Segments {
                holder,
                peer,
                bond,
                weight,
                ..Default::default()
            };
            let bad = |v: &[u32]| v.iter().any(|i| *i as usize >= n);
            if bad(&rows.src) || bad(&rows.dst) || bad(&segments.holder) || bad(&segments.peer) {
                return Err(std::io::Error::other("an index past the registry"));
            }
            Ok(Carried { rows, segments })
        }) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(file = %rows.display(), error = %e, "ignoring a damaged epoch cache entry; reading the ledger");
                None
            }
        }
    }
}

/// One record batch of whole columns: written from the shared buffers and
/// read back into one buffer per column, with no copy either way. `path` is
/// a provisional name ([`EpochCache::start`]), renamed into place whole.
fn write(
    path: &Path,
    u32s: &[(&str, &Column<u32>)],
    f64s: &[(&str, &Column<f64>)],
) -> std::io::Result<()> {
    let mut fields = vec![];
    let mut cols: Vec<ArrayRef> = vec![];
    for (name, v) in u32s {
        fields.push(Field::new(*name, DataType::UInt32, false));
        cols.push(Arc::new(UInt32Array::new((*v).clone(), None)));
    }
    for (name, v) in f64s {
        fields.push(Field::new(*name, DataType::Float64, false));
        cols.push(Arc::new(Float64Array::new((*v).clone(), None)));
    }
    let crc = checksum(&cols);
    let schema = Arc::new(
        Schema::new(fields).with_metadata(
            [(CRC_KEY.to_string(), crc.to_string())]
                .into_iter()
                .collect(),
        ),
    );
    let file = std::io::BufWriter::with_capacity(1 << 22, File::create(path)?);
    let mut w = FileWriter::try_new(file, &schema).map_err(std::io::Error::other)?;
    let b = RecordBatch::try_new(schema.clone(), cols).map_err(std::io::Error::other)?;
    w.write(&b).map_err(std::io::Error::other)?;
    w.finish().map_err(std::io::Error::other)?;
    let file = w.into_inner().map_err(std::io::Error::other)?;
    file.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Where a file keeps the CRC-32 of its columns.
const CRC_KEY: &str = "faceblock.crc32";

/// CRC-32 of the columns' values, in order (an unexpected type counts as
/// no bytes, and fails the read's type check anyway).
fn checksum(cols: &[ArrayRef]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for c in cols {
        if let Some(a) = c.as_primitive_opt::<UInt32Type>() {
            h.update(a.values().inner().as_slice());
        } else if let Some(a) = c.as_primitive_opt::<Float64Type>() {
            h.update(a.values().inner().as_slice());
        }
    }
    h.finalize()
}

type Columns = (Vec<Column<u32>>, Vec<Column<f64>>);

/// Column `i`'s values, sharing the buffer read from the file.
fn column<T: arrow::datatypes::ArrowPrimitiveType>(
    b: &RecordBatch,
    i: usize,
) -> std::io::Result<Column<T::Native>> {
    let a = b.column(i).as_primitive_opt::<T>();
    let a = a.filter(|a| a.null_count() == 0);
    Ok(a.ok_or_else(|| std::io::Error::other("bad column"))?
        .values()
        .clone())
}

/// Two UInt32 columns, then `floats` Float64 columns.
///
/// The file is mapped, not read: the columns are the page cache's pages, so
/// a gigabyte of carried state costs neither a copy nor a gigabyte of fresh
/// memory (first-touch page faults were most of this read). Files are only
/// ever renamed into place, never rewritten, so a mapped file does not change
/// under the reader; the checksum still reads every page once.
fn read(path: &Path, floats: usize) -> std::io::Result<Columns> {
    let file = File::open(path)?;
    // SAFETY: the cache's files are written to a private temporary name and
    // renamed into place, never truncated or written after that; removing a
    // file leaves an existing mapping intact.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let buf = arrow::buffer::Buffer::from(bytes::Bytes::from_owner(map));
    let batch = decode_one(&buf).map_err(std::io::Error::other)?;
    if batch.num_columns() != 2 + floats {
        return Err(std::io::Error::other("unexpected columns"));
    }
    let want = batch.schema_ref().metadata().get(CRC_KEY).cloned();
    if want != Some(checksum(batch.columns()).to_string()) {
        return Err(std::io::Error::other("checksum mismatch"));
    }
    let u = (0..2)
        .map(|i| column::<UInt32Type>(&batch, i))
        .collect::<std::io::Result<_>>()?;
    let f = (0..floats)
        .map(|i| column::<Float64Type>(&batch, 2 + i))
        .collect::<std::io::Result<_>>()?;
    Ok((u, f))
}

/// The one record batch of an IPC file held in `buf`, sharing its memory.
fn decode_one(buf: &arrow::buffer::Buffer) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::error::ArrowError;
    use arrow::ipc::convert::fb_to_schema;
    use arrow::ipc::reader::{read_footer_length, FileDecoder};
    let bad = |what: &str| ArrowError::IpcError(format!("epoch cache file: {what}"));
    let len = buf.len();
    if len < 10 {
        return Err(bad("too short"));
    }
    let tail: [u8; 10] = buf[len - 10..].try_into().expect("10 bytes");
    let footer_len = read_footer_length(tail)?;
    let start = (len - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| bad("cut"))?;
    let footer = arrow::ipc::root_as_footer(&buf[start..len - 10])
        .map_err(|e| bad(&format!("footer: {e}")))?;
    let schema = fb_to_schema(footer.schema().ok_or_else(|| bad("no schema"))?);
    let decoder = FileDecoder::new(Arc::new(schema), footer.version()).with_require_alignment(true);
    let blocks = footer.recordBatches().ok_or_else(|| bad("no batches"))?;
    if blocks.len() != 1 || footer.dictionaries().is_some_and(|d| !d.is_empty()) {
        return Err(bad("expected one batch and no dictionaries"));
    }
    let block = blocks.get(0);
    let block_len = (block.bodyLength() as usize)
        .checked_add(block.metaDataLength() as usize)
        .ok_or_else(|| bad("block length"))?;
    let offset = block.offset() as usize;
    if block.offset() < 0 || offset.checked_add(block_len).is_none_or(|end| end > start) {
        return Err(bad("block past the footer"));
    }
    let data = buf.slice_with_length(offset, block_len);
    decoder
        .read_record_batch(block, &data)?
        .ok_or_else(|| bad("empty block"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried() -> Carried {
        Carried {
            rows: Edges::new(vec![0, 0, 2], vec![1, 2, 0], vec![0.25, 0.75, 1.0]),
            segments: Segments {
                holder: vec![0, 1].into(),
                peer: vec![2, 0].into(),
                bond: vec![3.5, 0.0].into(),
                weight: vec![1.0, -0.0].into(),
                ..Default::default()
            },
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
        assert_eq!(got.segments.holder, vec![0, 1]);
        assert_eq!(got.segments.weight[1].to_bits(), (-0.0f64).to_bits());
        assert!(c.load(4, "abd", 3).is_none());
        assert!(c.load(3, "abc", 3).is_none());
        assert!(c.load(4, "abc", 2).is_none(), "uid index 2 past 2 peers");
        // A newer epoch replaces it.
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
