//! A peer's networks, in candle (whitepaper sections 5–7):
//!
//! - the encoder `f_i`: what the peer sells, bytes → `[seq_len, out_dim]`;
//! - the gating layer: noisy top-k over remote peers (Shazeer et al. 2017);
//! - the head: next-byte logits from `[G(x), f_i(x)]`;
//! - the student: a second encoder distilled to mimic `G(x)` (eq. 11), which
//!   stands in for the network when peers don't answer.
//!
//! Parameters live in one named map so a peer's whole state is one
//! safetensors file.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng;

use crate::{Error, Result};

/// Token id used before the start of a sequence.
const PAD: u32 = 256;
/// Byte vocabulary plus the pad token.
const VOCAB_IN: usize = 257;
/// Byte vocabulary predicted by the head.
const VOCAB_OUT: usize = 256;
/// Bytes of context each position sees (itself and the ones before it).
pub const CONTEXT: usize = 4;

/// Sizes of a peer's networks; `seq_len` and `out_dim` are the network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Tokens per example.
    pub seq_len: usize,
    /// Values per token in the common output shape.
    pub out_dim: usize,
    /// Width of the embeddings.
    pub embed: usize,
    /// Width of the hidden layers.
    pub hidden: usize,
}

impl Dims {
    /// The defaults used by `faceblock-peer` for a network's shape.
    pub fn new(seq_len: usize, out_dim: usize) -> Self {
        Self {
            seq_len,
            out_dim,
            embed: 32,
            hidden: 128,
        }
    }
}

/// Named trainable parameters, saved and loaded as one safetensors file.
#[derive(Default)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
}

impl ParamStore {
    fn get_or_init(&mut self, name: &str, shape: &[usize], std: f64) -> Result<Var> {
        if let Some(v) = self.vars.get(name) {
            if v.dims() == shape {
                return Ok(v.clone());
            }
            return Err(Error::Model(format!(
                "saved parameter {name} has shape {:?}, this network needs {shape:?}; \
                 the state directory belongs to a network with another shape",
                v.dims()
            )));
        }
        let v = if std == 0.0 {
            Var::zeros(shape, DType::F32, &Device::Cpu)?
        } else {
            Var::randn(0f32, std as f32, shape, &Device::Cpu)?
        };
        self.vars.insert(name.to_string(), v.clone());
        Ok(v)
    }

    /// Loads a safetensors file written by [`ParamStore::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::Model(format!("reading {}: {e}", path.display())))?;
        let mut vars = BTreeMap::new();
        for (k, t) in tensors {
            vars.insert(k, Var::from_tensor(&t)?);
        }
        Ok(Self { vars })
    }

    /// Writes all parameters atomically (a temporary file, then a rename), so
    /// a crash never leaves half a model.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: std::collections::HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&tensors, &tmp)
            .map_err(|e| Error::Model(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|source| {
            Error::Shared(faceblock_schemas::Error::Io {
                path: path.display().to_string(),
                source,
            })
        })?;
        Ok(())
    }
}

/// A dense layer whose weights can be used frozen (no gradient), so the
/// student's loss trains the student only.
#[derive(Clone)]
struct Linear {
    w: Var,
    b: Var,
}

impl Linear {
    fn new(ps: &mut ParamStore, name: &str, inp: usize, out: usize) -> Result<Self> {
        Ok(Self {
            w: ps.get_or_init(&format!("{name}.w"), &[inp, out], (1.0 / inp as f64).sqrt())?,
            b: ps.get_or_init(&format!("{name}.b"), &[out], 0.0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(self.w.as_tensor())?
            .broadcast_add(self.b.as_tensor())?)
    }

    fn forward_frozen(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w.as_tensor().detach())?
            .broadcast_add(&self.b.as_tensor().detach())?)
    }
}

/// Bytes → `[rows, out_dim]`: embeddings of each position's last
/// [`CONTEXT`] bytes, then two layers.
#[derive(Clone)]
pub struct Encoder {
    emb: Var,
    l1: Linear,
    l2: Linear,
    dims: Dims,
}

impl Encoder {
    fn new(ps: &mut ParamStore, name: &str, dims: Dims) -> Result<Self> {
        Ok(Self {
            emb: ps.get_or_init(&format!("{name}.emb"), &[VOCAB_IN, dims.embed], 1.0)?,
            l1: Linear::new(ps, &format!("{name}.l1"), CONTEXT * dims.embed, dims.hidden)?,
            l2: Linear::new(ps, &format!("{name}.l2"), dims.hidden, dims.out_dim)?,
            dims,
        })
    }

    /// `[examples × seq_len, out_dim]` for examples of `seq_len` bytes each.
    pub fn forward(&self, examples: &[&[u8]]) -> Result<Tensor> {
        let s = self.dims.seq_len;
        let n = examples.len() * s;
        let mut parts = Vec::with_capacity(CONTEXT);
        for c in 0..CONTEXT {
            let mut ids = Vec::with_capacity(n);
            for ex in examples {
                for t in 0..s {
                    ids.push(if t >= c { ex[t - c] as u32 } else { PAD });
                }
            }
            let ids = Tensor::from_vec(ids, n, &Device::Cpu)?;
            parts.push(self.emb.as_tensor().index_select(&ids, 0)?);
        }
        let x = Tensor::cat(&parts, 1)?;
        let h = self.l1.forward(&x)?.relu()?;
        self.l2.forward(&h)
    }
}

/// The local model on `[G(x), f_i(x)]`.
#[derive(Clone)]
struct Head {
    l1: Linear,
    l2: Linear,
}

impl Head {
    fn new(ps: &mut ParamStore, dims: Dims) -> Result<Self> {
        Ok(Self {
            l1: Linear::new(ps, "head.l1", 2 * dims.out_dim, dims.hidden)?,
            l2: Linear::new(ps, "head.l2", dims.hidden, VOCAB_OUT)?,
        })
    }

    fn forward(&self, g: &Tensor, f: &Tensor) -> Result<Tensor> {
        let x = Tensor::cat(&[g, f], 1)?;
        self.l2.forward(&self.l1.forward(&x)?.relu()?)
    }

    fn forward_frozen(&self, g: &Tensor, f: &Tensor) -> Result<Tensor> {
        let x = Tensor::cat(&[g, f], 1)?;
        self.l2.forward_frozen(&self.l1.forward_frozen(&x)?.relu()?)
    }
}

/// Gating logits over uid slots; grows when peers with larger uids join.
#[derive(Clone)]
struct Gating {
    w: Var,
}

/// Uid slots the gating layer starts with.
const GATING_SLOTS: usize = 64;

impl Gating {
    fn new(ps: &mut ParamStore, dims: Dims, max_uid: u32) -> Result<Self> {
        let need = (max_uid as usize + 1).next_power_of_two().max(GATING_SLOTS);
        let w = match ps.vars.get("gating.w") {
            Some(w) if w.dims()[0] < need => {
                let grown = Tensor::cat(
                    &[
                        w.as_tensor().clone(),
                        Tensor::zeros(
                            (need - w.dims()[0], dims.out_dim),
                            DType::F32,
                            &Device::Cpu,
                        )?,
                    ],
                    0,
                )?;
                let v = Var::from_tensor(&grown)?;
                ps.vars.insert("gating.w".into(), v.clone());
                v
            }
            Some(w) => w.clone(),
            None => ps.get_or_init("gating.w", &[need, dims.out_dim], 0.0)?,
        };
        Ok(Self { w })
    }

    /// `[examples, slots]` logits from the mean of the peer's own encoding.
    fn logits(&self, f: &Tensor, examples: usize, dims: Dims) -> Result<Tensor> {
        let summary = f
            .detach()
            .reshape((examples, dims.seq_len, dims.out_dim))?
            .mean(1)?;
        Ok(summary.matmul(&self.w.as_tensor().t()?)?)
    }
}

/// Everything a peer trains.
pub struct PeerModel {
    /// The parameters, for saving.
    pub params: ParamStore,
    /// `f_i`, served to other peers.
    pub encoder: Encoder,
    student: Encoder,
    head: Head,
    gating: Gating,
    dims: Dims,
}

/// AdamW for everything, with a faster rate for the gating layer: it sees
/// real answers only a few steps per epoch and must still learn whom to trust.
pub struct Trainer {
    main: candle_nn::AdamW,
    gating: candle_nn::AdamW,
}

impl Trainer {
    /// Optimisers over `model`'s variables.
    pub fn new(model: &PeerModel, lr: f64, gating_lr: f64) -> Result<Self> {
        use candle_nn::Optimizer;
        let cfg = |lr| candle_nn::ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        };
        let main: Vec<Var> = model
            .params
            .vars
            .iter()
            .filter(|(k, _)| !k.starts_with("gating."))
            .map(|(_, v)| v.clone())
            .collect();
        Ok(Self {
            main: candle_nn::AdamW::new(main, cfg(lr))?,
            gating: candle_nn::AdamW::new(vec![model.gating.w.clone()], cfg(gating_lr))?,
        })
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        use candle_nn::Optimizer;
        self.main.step(grads)?;
        self.gating.step(grads)?;
        Ok(())
    }
}

/// One example of a batch: `seq_len + 1` bytes (inputs and next-byte targets).
pub type Window = Vec<u8>;

/// Answers from one remote peer for some examples of a batch.
pub struct Answer {
    /// The answering uid.
    pub uid: u32,
    /// Positions in the batch it answered.
    pub rows: Vec<usize>,
    /// `rows.len() × seq_len × out_dim` values.
    pub values: Vec<f32>,
}

/// What one training step on a queried batch measured and produced.
pub struct ExchangeStep {
    /// Next-byte cross-entropy before the step.
    pub loss: f64,
    /// The student's KL to the network before the step.
    pub distill_loss: f64,
    /// `dL/df_j(x)` per answering peer, aligned with its `Answer::rows`.
    pub gradients: Vec<(u32, Vec<f32>)>,
    /// Mean gate weight each answering peer got on the examples it answered.
    pub usage: Vec<f64>,
}

impl PeerModel {
    /// Builds (or restores, from `params`) a peer's networks.
    pub fn new(mut params: ParamStore, dims: Dims, max_uid: u32) -> Result<Self> {
        let encoder = Encoder::new(&mut params, "encoder", dims)?;
        let student = Encoder::new(&mut params, "student", dims)?;
        let head = Head::new(&mut params, dims)?;
        let gating = Gating::new(&mut params, dims, max_uid)?;
        Ok(Self {
            params,
            encoder,
            student,
            head,
            gating,
            dims,
        })
    }

    /// Uid slots of the gating layer.
    pub fn gating_slots(&self) -> usize {
        self.gating.w.dims()[0]
    }

    /// The network's shape this model was built for.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// `f_i(x)` as plain values, `[examples × seq_len × out_dim]`.
    pub fn answer(&self, examples: &[&[u8]]) -> Result<Vec<f32>> {
        Ok(self.encoder.forward(examples)?.flatten_all()?.to_vec1()?)
    }

    /// Gating logits per example over `candidates`, with exploration noise of
    /// `noise` standard deviations, as `[examples][candidates]`.
    pub fn gate_logits(
        &self,
        inputs: &[&[u8]],
        candidates: &[u32],
        noise: f64,
        rng: &mut impl Rng,
    ) -> Result<Vec<Vec<f32>>> {
        let f = self.encoder.forward(inputs)?;
        let logits = self.gating.logits(&f, inputs.len(), self.dims)?;
        let idx = Tensor::from_vec(candidates.to_vec(), candidates.len(), &Device::Cpu)?;
        let sel: Vec<Vec<f32>> = logits.index_select(&idx, 1)?.to_vec2()?;
        Ok(sel
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|l| {
                        let z: f64 = rng.sample(rand_distr_normal());
                        l + (noise * z) as f32
                    })
                    .collect()
            })
            .collect())
    }

    fn split(&self, windows: &[Window]) -> Result<(Vec<Vec<u8>>, Tensor)> {
        let s = self.dims.seq_len;
        let inputs: Vec<Vec<u8>> = windows.iter().map(|w| w[..s].to_vec()).collect();
        let targets: Vec<u32> = windows
            .iter()
            .flat_map(|w| w[1..=s].iter().map(|b| *b as u32))
            .collect();
        let n = targets.len();
        Ok((inputs, Tensor::from_vec(targets, n, &Device::Cpu)?))
    }

    /// Forward pass shared by every step: loss, distillation loss and the
    /// tensors whose gradients the caller wants.
    fn losses(
        &self,
        windows: &[Window],
        answers: &[(&Answer, &Var)],
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let d = self.dims;
        let b = windows.len();
        let (inputs, targets) = self.split(windows)?;
        let refs: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        let f = self.encoder.forward(&refs)?;
        let student = self.student.forward(&refs)?;
        let rows = b * d.seq_len;

        // G(x): answered examples mix their answers through the gate; the rest
        // use the student, detached so the main loss doesn't train it.
        let mut gate_values = None;
        let g = if answers.is_empty() {
            student.detach()
        } else {
            let uids: Vec<u32> = answers.iter().map(|(a, _)| a.uid).collect();
            let idx = Tensor::from_vec(uids, answers.len(), &Device::Cpu)?;
            let logits = self.gating.logits(&f, b, d)?.index_select(&idx, 1)?;
            let mut mask = vec![-1e9f32; b * answers.len()];
            let mut answered = vec![0f32; b];
            for (c, (a, _)) in answers.iter().enumerate() {
                for r in &a.rows {
                    mask[r * answers.len() + c] = 0.0;
                    answered[*r] = 1.0;
                }
            }
            let mask = Tensor::from_vec(mask, (b, answers.len()), &Device::Cpu)?;
            // `softmax_last_dim` has no backward pass in candle; this one does.
            let gates = candle_nn::ops::softmax(&(logits + mask)?, D::Minus1)?;
            gate_values = Some(gates.detach());
            let gates = gates
                .unsqueeze(1)?
                .broadcast_as((b, d.seq_len, answers.len()))?
                .reshape((rows, answers.len(), 1))?;
            let stacked = Tensor::stack(
                &answers
                    .iter()
                    .map(|(_, v)| v.as_tensor().clone())
                    .collect::<Vec<_>>(),
                1,
            )?;
            let remote = stacked.broadcast_mul(&gates)?.sum(1)?;
            let answered: Vec<f32> = answered
                .iter()
                .flat_map(|a| std::iter::repeat_n(*a, d.seq_len))
                .collect();
            let answered = Tensor::from_vec(answered, (rows, 1), &Device::Cpu)?;
            let standin = student.detach().broadcast_mul(&(1.0 - &answered)?)?;
            (remote + standin)?
        };
        let logits = self.head.forward(&g, &f)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;

        // Distillation (eq. 11): the student's prediction, through a frozen
        // head, against the network's.
        let p = candle_nn::ops::softmax_last_dim(&logits.detach())?;
        let log_p = candle_nn::ops::log_softmax(&logits.detach(), D::Minus1)?;
        let log_q = candle_nn::ops::log_softmax(
            &self.head.forward_frozen(&student, &f.detach())?,
            D::Minus1,
        )?;
        let kl = (p * (log_p - log_q)?)?.sum(1)?.mean(0)?;
        Ok((loss, kl, gate_values))
    }

    /// One step on a batch with the answers peers sent (possibly none).
    /// Returns the losses before the step and `dL/df_j(x)` for each answer.
    pub fn train_step(
        &self,
        opt: &mut Trainer,
        windows: &[Window],
        answers: &[Answer],
    ) -> Result<ExchangeStep> {
        let d = self.dims;
        let width = d.seq_len * d.out_dim;
        let b = windows.len();
        let mut vars = Vec::with_capacity(answers.len());
        for a in answers {
            vars.push((a, self.scatter(a, b)?));
        }
        let refs: Vec<(&Answer, &Var)> = vars.iter().map(|(a, v)| (*a, v)).collect();
        let (loss, kl, gates) = self.losses(windows, &refs)?;
        let usage = match gates {
            Some(g) => {
                let g: Vec<Vec<f32>> = g.to_vec2()?;
                vars.iter()
                    .enumerate()
                    .map(|(c, (a, _))| {
                        a.rows.iter().map(|r| g[*r][c] as f64).sum::<f64>()
                            / a.rows.len().max(1) as f64
                    })
                    .collect()
            }
            None => vec![],
        };
        let total = (&loss + &kl)?;
        let grads = total.backward()?;
        let mut gradients = Vec::with_capacity(vars.len());
        for (a, v) in &vars {
            let g: Vec<f32> = match grads.get(v) {
                Some(g) => g.flatten_all()?.to_vec1()?,
                None => vec![0f32; b * width],
            };
            let mut out = Vec::with_capacity(a.rows.len() * width);
            for r in &a.rows {
                out.extend_from_slice(&g[r * width..(r + 1) * width]);
            }
            gradients.push((a.uid, out));
        }
        opt.step(&grads)?;
        Ok(ExchangeStep {
            loss: loss.to_scalar::<f32>()? as f64,
            distill_loss: kl.to_scalar::<f32>()? as f64,
            gradients,
            usage,
        })
    }

    /// What removing each answering peer would cost: the loss with its term
    /// taken out of `G(x)` (ΔF = −g_j(x) f_j(x), the other gates unchanged,
    /// as in whitepaper eq. 12) minus the loss with all answers. A peer whose
    /// answers only add noise costs nothing, or less than nothing, to remove.
    pub fn removal_cost(&self, windows: &[Window], answers: &[Answer]) -> Result<Vec<f64>> {
        let d = self.dims;
        let b = windows.len();
        let vars = answers
            .iter()
            .map(|a| self.scatter(a, b))
            .collect::<Result<Vec<_>>>()?;
        let zero = Var::zeros((b * d.seq_len, d.out_dim), DType::F32, &Device::Cpu)?;
        let all: Vec<(&Answer, &Var)> = answers.iter().zip(&vars).collect();
        let base = self.losses(windows, &all)?.0.to_scalar::<f32>()? as f64;
        (0..answers.len())
            .map(|c| {
                let mut without = all.clone();
                without[c].1 = &zero;
                Ok(self.losses(windows, &without)?.0.to_scalar::<f32>()? as f64 - base)
            })
            .collect()
    }

    /// An answer as a full-batch `[batch × seq_len, out_dim]` variable: its
    /// rows where it answered, zeros elsewhere.
    fn scatter(&self, a: &Answer, batch: usize) -> Result<Var> {
        let d = self.dims;
        let width = d.seq_len * d.out_dim;
        let mut full = vec![0f32; batch * width];
        for (k, r) in a.rows.iter().enumerate() {
            full[r * width..(r + 1) * width].copy_from_slice(&a.values[k * width..(k + 1) * width]);
        }
        Ok(Var::from_tensor(&Tensor::from_vec(
            full,
            (batch * d.seq_len, d.out_dim),
            &Device::Cpu,
        )?)?)
    }

    /// Mean next-byte loss on `windows` with the student standing in, no training.
    pub fn eval_loss(&self, windows: &[Window]) -> Result<f64> {
        let (loss, _, _) = self.losses(windows, &[])?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }

    /// Trains `f_i` on a gradient another peer sent for `f_i(x)`: the
    /// surrogate `Σ ⟨f_i(x), g⟩` has exactly that gradient.
    pub fn train_on_remote_gradient(
        &self,
        opt: &mut Trainer,
        examples: &[&[u8]],
        gradient: &[f32],
    ) -> Result<()> {
        let d = self.dims;
        let f = self.encoder.forward(examples)?;
        let g = Tensor::from_vec(
            gradient.to_vec(),
            (examples.len() * d.seq_len, d.out_dim),
            &Device::Cpu,
        )?;
        let surrogate = (f * g)?.sum_all()?;
        opt.step(&surrogate.backward()?)?;
        Ok(())
    }
}

fn rand_distr_normal() -> impl rand::distributions::Distribution<f64> {
    // Box–Muller from two uniforms; avoids pulling in rand_distr for one use.
    struct Normal;
    impl rand::distributions::Distribution<f64> for Normal {
        fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }
    Normal
}

/// Standard normal samples, for the `noise` behaviour.
pub fn normal(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    let d = rand_distr_normal();
    (0..n).map(|_| rng.sample(&d) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(n: usize, s: usize) -> Vec<Window> {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc";
        (0..n)
            .map(|i| text[i % 3..i % 3 + s + 1].to_vec())
            .collect()
    }

    #[test]
    fn learns_a_repeating_pattern_and_round_trips() {
        let dims = Dims::new(8, 16);
        let m = PeerModel::new(ParamStore::default(), dims, 3).unwrap();
        let mut opt = Trainer::new(&m, 1e-2, 1e-2).unwrap();
        let w = windows(8, 8);
        let before = m.eval_loss(&w).unwrap();
        for _ in 0..40 {
            m.train_step(&mut opt, &w, &[]).unwrap();
        }
        let after = m.eval_loss(&w).unwrap();
        assert!(after < before * 0.3, "loss {before} -> {after}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        m.params.save(&path).unwrap();
        let back = PeerModel::new(ParamStore::load(&path).unwrap(), dims, 3).unwrap();
        assert_eq!(back.eval_loss(&w).unwrap(), after);
        // Another shape is refused with a clear error, not a panic.
        assert!(PeerModel::new(ParamStore::load(&path).unwrap(), Dims::new(8, 32), 3).is_err());
    }

    #[test]
    fn gradients_come_back_for_answered_rows_only() {
        let dims = Dims::new(4, 8);
        let m = PeerModel::new(ParamStore::default(), dims, 5).unwrap();
        let mut opt = Trainer::new(&m, 0.0, 0.0).unwrap();
        let w = windows(3, 4);
        let width = 4 * 8;
        let a = Answer {
            uid: 2,
            rows: vec![0, 2],
            values: vec![0.5; 2 * width],
        };
        let step = m.train_step(&mut opt, &w, &[a]).unwrap();
        assert_eq!(step.gradients.len(), 1);
        assert_eq!(step.gradients[0].0, 2);
        assert_eq!(step.gradients[0].1.len(), 2 * width);
        assert!(step.gradients[0].1.iter().any(|g| *g != 0.0));
        assert!(step.loss.is_finite() && step.distill_loss >= 0.0);
    }

    #[test]
    fn the_gating_layer_learns_from_answers() {
        let dims = Dims::new(4, 8);
        let m = PeerModel::new(ParamStore::default(), dims, 5).unwrap();
        let mut opt = Trainer::new(&m, 1e-2, 1e-1).unwrap();
        let w = windows(3, 4);
        let width = 4 * 8;
        let answers = || {
            vec![
                Answer {
                    uid: 1,
                    rows: vec![0, 1, 2],
                    values: (0..3 * width).map(|i| (i % 7) as f32 - 3.0).collect(),
                },
                Answer {
                    uid: 2,
                    rows: vec![0, 1, 2],
                    values: vec![0.1; 3 * width],
                },
            ]
        };
        m.train_step(&mut opt, &w, &answers()).unwrap();
        let g = m.gating.w.as_tensor().abs().unwrap().max_all().unwrap();
        assert!(g.to_scalar::<f32>().unwrap() > 0.0);
    }
}
