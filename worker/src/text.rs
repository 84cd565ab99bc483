//! A peer's own data: the bytes of every file under a folder, sampled as
//! windows of `seq_len + 1` bytes (inputs and next-byte targets), and a
//! generator of text with learnable structure so a market needs no download.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::model::Window;
use crate::{Error, Result};

/// Skip files larger than this when reading a folder (logs, binaries).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// All text under a folder (or one file), concatenated in path order.
pub struct Corpus {
    bytes: Vec<u8>,
}

impl Corpus {
    /// Reads every regular file under `path`, skipping hidden entries and
    /// files that are not UTF-8 text.
    pub fn load(path: &Path, seq_len: usize) -> Result<Self> {
        let mut files = Vec::new();
        collect(path, &mut files)?;
        files.sort();
        let mut bytes = Vec::new();
        for f in &files {
            let b = std::fs::read(f).map_err(|source| io(f, source))?;
            if std::str::from_utf8(&b).is_ok() {
                bytes.extend_from_slice(&b);
                bytes.push(b'\n');
            }
        }
        if bytes.len() <= seq_len + 1 {
            return Err(Error::Data(format!(
                "{} holds {} bytes of text; a peer needs more than seq_len + 1 = {}",
                path.display(),
                bytes.len(),
                seq_len + 1
            )));
        }
        Ok(Self { bytes })
    }

    /// Wraps bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there is no text at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `n` random windows of `seq_len + 1` bytes.
    pub fn sample(&self, rng: &mut impl Rng, n: usize, seq_len: usize) -> Vec<Window> {
        let last = self.bytes.len() - seq_len - 1;
        (0..n)
            .map(|_| {
                let s = rng.gen_range(0..=last);
                self.bytes[s..s + seq_len + 1].to_vec()
            })
            .collect()
    }
}

fn io(p: &Path, source: std::io::Error) -> Error {
    Error::Shared(faceblock_schemas::Error::Io {
        path: p.display().to_string(),
        source,
    })
}

fn collect(path: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Data(format!(
            "can't read data at {}: {e}; --data takes a folder of text files",
            path.display()
        ))
    })?;
    if meta.is_file() {
        if meta.len() <= MAX_FILE_BYTES {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
        let entry = entry.map_err(|e| io(path, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| io(&p, e))?;
        if ft.is_dir() {
            collect(&p, out)?;
        } else if ft.is_file() && entry.metadata().map(|m| m.len()).unwrap_or(0) <= MAX_FILE_BYTES {
            out.push(p);
        }
    }
    Ok(())
}

/// Styles of generated text; each has structure a small model can learn and
/// that differs from the others, so peers have something to trade.
pub const STYLES: [&str; 4] = ["arithmetic", "prose", "records", "code"];

/// Generates about `bytes` of text in `style` (an index into [`STYLES`]).
pub fn generate(style: usize, seed: u64, bytes: usize) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(bytes + 128);
    while out.len() < bytes {
        match style % STYLES.len() {
            0 => {
                let a = rng.gen_range(0..50);
                let b = rng.gen_range(0..50);
                if rng.gen_bool(0.5) {
                    out.push_str(&format!("{a} + {b} = {}.\n", a + b));
                } else {
                    out.push_str(&format!("{} - {b} = {a}.\n", a + b));
                }
            }
            1 => {
                const SUBJ: [&str; 6] = [
                    "the cat",
                    "a dog",
                    "the old man",
                    "my friend",
                    "the bird",
                    "a child",
                ];
                const VERB: [&str; 6] = ["sees", "likes", "follows", "finds", "hears", "paints"];
                const OBJ: [&str; 6] = [
                    "the river",
                    "a red apple",
                    "the moon",
                    "a small house",
                    "the garden",
                    "an open door",
                ];
                let s = SUBJ.choose(&mut rng).expect("non-empty");
                let v = VERB.choose(&mut rng).expect("non-empty");
                let o = OBJ.choose(&mut rng).expect("non-empty");
                out.push_str(&format!("{s} {v} {o}. "));
                if rng.gen_bool(0.2) {
                    out.push('\n');
                }
            }
            2 => {
                const NAMES: [&str; 6] = ["ada", "bob", "cyd", "dee", "eve", "fay"];
                let id = rng.gen_range(1000..1100);
                let n = NAMES.choose(&mut rng).expect("non-empty");
                let score = rng.gen_range(0..100);
                let grade = match score {
                    90.. => 'A',
                    70..=89 => 'B',
                    50..=69 => 'C',
                    _ => 'D',
                };
                out.push_str(&format!("{{\"id\": {id}, \"name\": \"{n}\", \"score\": {score}, \"grade\": \"{grade}\"}}\n"));
            }
            _ => {
                const VARS: [&str; 5] = ["x", "y", "total", "count", "i"];
                let v = VARS.choose(&mut rng).expect("non-empty");
                let n = rng.gen_range(1..10);
                match rng.gen_range(0..3) {
                    0 => out.push_str(&format!("let {v} = {v} + {n};\n")),
                    1 => out.push_str(&format!("for {v} in 0..{n} {{\n    sum += {v};\n}}\n")),
                    _ => out.push_str(&format!("if {v} > {n} {{\n    return {v};\n}}\n")),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_differ_and_are_deterministic() {
        let a = generate(0, 1, 2000);
        assert_eq!(a, generate(0, 1, 2000));
        assert_ne!(a, generate(1, 1, 2000));
        assert!(a.len() >= 2000);
    }

    #[test]
    fn corpus_reads_folders_and_refuses_tiny_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), generate(1, 2, 500)).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), "more text here").unwrap();
        std::fs::write(dir.path().join("bin"), [0xff, 0xfe, 0x00]).unwrap();
        let c = Corpus::load(dir.path(), 16).unwrap();
        assert!(c.len() > 500);
        let w = c.sample(&mut rand::thread_rng(), 3, 16);
        assert!(w.iter().all(|w| w.len() == 17));
        let tiny = tempfile::tempdir().unwrap();
        std::fs::write(tiny.path().join("a.txt"), "hi").unwrap();
        assert!(Corpus::load(tiny.path(), 16).is_err());
        assert!(Corpus::load(&dir.path().join("missing"), 16).is_err());
    }
}
