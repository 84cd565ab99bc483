//! What each synthetic peer writes each epoch: honest rows by noisy quality,
//! the cabal's self-votes (padded or not), noise, and copies of the
//! consensus. Every draw comes from a stream keyed by (seed, epoch, uid), so
//! a scenario writes the same rows whatever order peers are handled in.

use super::scenario::{Group, Market};

/// SplitMix64: a fixed, portable stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream for `(seed, a, b)`.
    pub fn new(seed: u64, a: u64, b: u64) -> Self {
        let mut r = Self(seed ^ 0x9E37_79B9_7F4A_7C15);
        r.0 ^= r.bits().wrapping_add(a);
        r.0 ^= r.bits().wrapping_add(b);
        r
    }

    /// The next 64 bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The tiny weight a padding cabal puts on honest peers (raw, beside 1 on
/// each member): enough to count as an entry, too small to move a rank.
pub const PAD_WEIGHT: f64 = 1e-6;

/// The market's fixed traits, drawn once from the seed.
#[derive(Debug, Clone)]
pub struct Agents {
    market: Market,
    seed: u64,
    /// True quality of each honest peer, in [0.5, 1.5).
    quality: Vec<f64>,
    /// Each honest peer's preference order over the other honest peers.
    prefs: Vec<Vec<u32>>,
}

impl Agents {
    /// Draws qualities and views.
    pub fn new(market: &Market, seed: u64) -> Self {
        let h = market.honest;
        let mut r = Rng::new(seed, u64::MAX, 0);
        let quality: Vec<f64> = (0..h).map(|_| 0.5 + r.unit()).collect();
        let prefs = (0..h)
            .map(|i| {
                let mut r = Rng::new(seed, u64::MAX, 1 + i as u64);
                let mut view: Vec<(f64, u32)> = (0..h)
                    .filter(|j| *j != i)
                    .map(|j| (quality[j as usize] + market.taste * r.unit(), j))
                    .collect();
                view.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                view.into_iter().map(|v| v.1).collect()
            })
            .collect();
        Self {
            market: market.clone(),
            seed,
            quality,
            prefs,
        }
    }

    /// Peer `u`'s raw row for `epoch` at network k `k`; `consensus` is the
    /// previous epoch's incentive by uid (for copiers; empty at epoch 0).
    /// An empty row means the peer writes nothing.
    pub fn row(&self, u: u32, epoch: u64, k: u32, consensus: &[f64]) -> (Vec<u32>, Vec<f64>) {
        let m = &self.market;
        let n = m.peers();
        let mut r = Rng::new(self.seed, epoch, u as u64);
        match m.group(u) {
            Group::Honest => {
                let size = m.honest_row().max(k).min(m.honest - 1) as usize;
                let dst: Vec<u32> = self.prefs[u as usize][..size].to_vec();
                let w = dst
                    .iter()
                    .map(|j| {
                        let noise = 1.0 + m.quality_noise * (2.0 * r.unit() - 1.0);
                        self.quality[*j as usize] * noise
                    })
                    .collect();
                (dst, w)
            }
            Group::Cabal => {
                let lo = m.honest;
                let mut dst: Vec<u32> = (lo..lo + m.cabal).filter(|j| *j != u).collect();
                let mut w = vec![1.0; dst.len()];
                if m.cabal_pads && (dst.len() as u32) < k {
                    let pad = (k - dst.len() as u32).min(m.honest);
                    for x in 0..pad {
                        dst.push((u + x) % m.honest);
                        w.push(PAD_WEIGHT);
                    }
                }
                (dst, w)
            }
            Group::Noise => {
                let size = m.honest_row().max(k).min(n - 1) as usize;
                let mut all: Vec<u32> = (0..n).filter(|j| *j != u).collect();
                // A partial Fisher–Yates shuffle: the first `size` are a uniform draw.
                for x in 0..size {
                    let y = x + (r.bits() % (all.len() - x) as u64) as usize;
                    all.swap(x, y);
                }
                all.truncate(size);
                let w = all.iter().map(|_| 0.01 + r.unit()).collect();
                (all, w)
            }
            Group::Copier => {
                let mut paid: Vec<(f64, u32)> = consensus
                    .iter()
                    .enumerate()
                    .filter(|(j, v)| **v > 0.0 && *j as u32 != u)
                    .map(|(j, v)| (*v, j as u32))
                    .collect();
                paid.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                paid.truncate(m.honest_row().max(k) as usize);
                paid.into_iter().map(|(v, j)| (j, v)).unzip()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_groups() {
        let m = Market {
            honest: 5,
            honest_k: 2,
            cabal: 3,
            cabal_stake: 0.3,
            cabal_pads: true,
            noise: 1,
            noise_stake: 0.05,
            copiers: 1,
            copier_stake: 0.05,
            ..Market::default()
        };
        let a = Agents::new(&m, 7);
        let (d, w) = a.row(0, 3, 1, &[]);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|j| *j < 5 && *j != 0));
        assert!(w.iter().all(|x| *x > 0.0));
        // k = 3 lengthens honest rows; the cabal pads its 2 members with 1 honest peer.
        assert_eq!(a.row(0, 3, 3, &[]).0.len(), 3);
        let (d, w) = a.row(5, 0, 3, &[]);
        assert_eq!(d, vec![6, 7, 0]);
        assert_eq!(w, vec![1.0, 1.0, PAD_WEIGHT]);
        assert_eq!(a.row(8, 0, 4, &[]).0.len(), 4);
        // The copier copies the paid peers, largest first, never itself.
        let inc = [0.0, 0.5, 0.2, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.9];
        assert_eq!(a.row(9, 1, 1, &inc), (vec![1, 4], vec![0.5, 0.3]));
        assert_eq!(a.row(9, 0, 1, &[]).0.len(), 0);
        // Same seed, same rows.
        assert_eq!(Agents::new(&m, 7).row(2, 9, 2, &[]), a.row(2, 9, 2, &[]));
        assert_ne!(Agents::new(&m, 8).row(2, 9, 2, &[]), a.row(2, 9, 2, &[]));
    }
}
