//! Trains a YOLOv8 detector on synthetic scenes: a simplified YOLOv8 loss, AdamW with warm-up and
//! cosine decay, progress on stderr, and checkpoints that let a run resume where it stopped.
//!
//! The loss follows YOLOv8 with fewer moving parts:
//! - assignment: task-aligned. An anchor is a candidate for a mug when its centre lies inside
//!   the mug's box (the nearest stride-8 anchor when none does); candidates are ranked by
//!   `score^0.5 * IoU^6` and the best 10 become positives; an anchor claimed by two mugs goes
//!   to the one it overlaps more. The class target of a positive is its alignment normalised
//!   so the best positive of each mug gets that mug's best IoU.
//! - class loss: binary cross-entropy over every anchor and class, divided by the sum of
//!   targets; box loss: 1 − GIoU of each positive, weighted by its target; DFL: cross-entropy of
//!   each side's distribution against the two bins around the true distance.
//! - total: `7.5 box + 0.5 class + 1.5 DFL`, YOLOv8's weights.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor, Var, backprop::GradStore};
use candle_nn::{ParamsAdamW, VarBuilder, VarMap};

use super::error::MugError;
use super::model::{Mode, ModelShape, REG_MAX, RawOutput, Variant, YoloV8, dfl_weight};
use super::postprocess::BoxXyxy;
use super::preprocess::letterbox_pixels;
use super::synthetic::random_scene;

/// Class names of the shipped model.
pub const SHIPPED_CLASSES: &str = "mug";
/// Name written into the shipped model's metadata.
pub const SHIPPED_NAME: &str = "mug-detector";
/// Seeds of held-out evaluation scenes start here; training scenes never reach it.
pub const EVAL_SEED_BASE: u64 = 0xE7A1_0000_0000;

const TOP_K: usize = 10;
const ALPHA: f32 = 0.5;
const BETA: i32 = 6;
const BOX_GAIN: f64 = 7.5;
const CLS_GAIN: f64 = 0.5;
const DFL_GAIN: f64 = 1.5;

/// How a training run goes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Where the final weights go; the checkpoint sits beside it with `.ckpt` appended.
    pub out: PathBuf,
    /// Total optimizer steps (a resumed run continues up to this count).
    pub steps: usize,
    /// Scenes per step.
    pub batch: usize,
    /// Longer side of the training scenes, rounded up to a multiple of 32.
    pub image_size: u32,
    /// Seed of the scene stream.
    pub seed: u64,
    /// Continue from the checkpoint when there is one.
    pub resume: bool,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Network size.
    pub variant: Variant,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            out: PathBuf::from("gpu-backend/mug/models/mug-detector.safetensors"),
            steps: 2_000,
            batch: 16,
            image_size: 256,
            seed: 0,
            resume: false,
            learning_rate: 2e-3,
            checkpoint_every: 50,
            variant: Variant::P,
        }
    }
}

/// What a run reports when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// The step it stopped at.
    pub steps: usize,
    /// Mean loss over the last 50 steps.
    pub final_loss: f32,
    /// Wall time of this run (not counting earlier runs it resumed).
    pub seconds: f64,
}

/// The parts of the loss, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossParts {
    /// 1 − GIoU, weighted.
    pub boxes: f32,
    /// Binary cross-entropy.
    pub classes: f32,
    /// Distribution focal loss.
    pub dfl: f32,
}

/// AdamW whose moments can be saved and restored, so a resumed run continues the same
/// optimisation. Weight decay applies to convolution weights only.
#[derive(Debug)]
pub struct ResumableAdamW {
    vars: Vec<(String, Var, Var, Var)>,
    step: usize,
    params: ParamsAdamW,
}

impl ResumableAdamW {
    /// Optimises every named variable that is not a batch-norm running statistic or the fixed
    /// DFL projection.
    pub fn new(named: Vec<(String, Var)>, params: ParamsAdamW) -> candle_core::Result<Self> {
        let mut vars = Vec::new();
        for (name, var) in named {
            if name.ends_with("running_mean")
                || name.ends_with("running_var")
                || name.starts_with("head.dfl")
            {
                continue;
            }
            let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
            let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
            vars.push((name, var, m, v));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ResumableAdamW {
            vars,
            step: 0,
            params,
        })
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Applies one update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let p = &self.params;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - p.beta1.powi(t), 1.0 - p.beta2.powi(t));
        for (name, var, m, v) in &self.vars {
            let Some(g) = grads.get(var) else { continue };
            let m_next = ((m.as_tensor() * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let v_next = ((v.as_tensor() * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m_next / c1)? / ((&v_next / c2)?.sqrt()? + p.eps)?)?;
            let decay = if name.ends_with("conv.weight") {
                p.weight_decay
            } else {
                0.0
            };
            let next = ((var.as_tensor() * (1.0 - p.lr * decay))? - (update * p.lr)?)?;
            m.set(&m_next)?;
            v.set(&v_next)?;
            var.set(&next)?;
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .flat_map(|(name, _, m, v)| {
                [
                    (format!("adam.m.{name}"), m.as_tensor().clone()),
                    (format!("adam.v.{name}"), v.as_tensor().clone()),
                ]
            })
            .collect()
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: usize,
    ) -> candle_core::Result<()> {
        for (name, _, m, v) in &self.vars {
            if let (Some(tm), Some(tv)) = (
                tensors.get(&format!("adam.m.{name}")),
                tensors.get(&format!("adam.v.{name}")),
            ) {
                m.set(tm)?;
                v.set(tv)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The learning rate at `step` of `total`: linear warm-up over the first 5 % (at most 100
/// steps), then cosine decay to 5 % of the peak.
pub fn learning_rate(step: usize, total: usize, peak: f64) -> f64 {
    let warmup = (total / 20).clamp(1, 100);
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
    peak * (0.05 + 0.95 * cosine)
}

/// A batch of letterboxed scenes and their mug boxes in input pixels.
pub struct Batch {
    /// `(batch, 3, size, size)` pixels in 0..1.
    pub images: Tensor,
    /// Per image, the mug boxes in input pixels.
    pub boxes: Vec<Vec<BoxXyxy>>,
}

/// Renders the scenes with the given seeds, letterboxed to a `size`×`size` input.
pub fn make_batch(
    seeds: impl IntoIterator<Item = u64>,
    size: u32,
    device: &Device,
) -> Result<Batch, MugError> {
    let size = size.max(32).div_ceil(32) * 32;
    let mut data = Vec::new();
    let mut boxes = Vec::new();
    let plane = (size * size) as usize;
    for seed in seeds {
        let scene = random_scene(seed, size);
        let (pixels, plan) = letterbox_pixels(&scene.image, size);
        let mut square = vec![f32::from(super::preprocess::PAD_VALUE) / 255.0; 3 * plane];
        let (w, h) = (plan.input_width, plan.input_height);
        let (ox, oy) = ((size as usize - w) / 2, (size as usize - h) / 2);
        for c in 0..3 {
            for y in 0..h {
                let src = &pixels[c * w * h + y * w..c * w * h + (y + 1) * w];
                let start = c * plane + (y + oy) * size as usize + ox;
                square[start..start + w].copy_from_slice(src);
            }
        }
        data.extend_from_slice(&square);
        boxes.push(
            scene
                .mugs
                .iter()
                .map(|b| {
                    let (x1, y1) = plan.to_input(b.x1, b.y1);
                    let (x2, y2) = plan.to_input(b.x2, b.y2);
                    BoxXyxy {
                        x1: x1 + ox as f32,
                        y1: y1 + oy as f32,
                        x2: x2 + ox as f32,
                        y2: y2 + oy as f32,
                    }
                })
                .collect(),
        );
    }
    let n = boxes.len();
    let images = Tensor::from_vec(data, (n, 3, size as usize, size as usize), device)?;
    Ok(Batch { images, boxes })
}

struct Positive {
    flat: u32,
    anchor: (f32, f32),
    target: BoxXyxy,
    weight: f32,
}

/// The training loss of one batch: the total to minimise and its parts.
pub fn loss(
    model: &YoloV8,
    raw: &RawOutput,
    boxes: &[Vec<BoxXyxy>],
) -> Result<(Tensor, LossParts), MugError> {
    let device = raw.logits.device();
    let (b, _, n) = raw.logits.dims3()?;
    let classes = model.shape().classes;
    let dist = model.side_distances(raw)?;
    let cls_logits = raw.logits.i((.., 4 * REG_MAX..))?;
    let dist_v = dist.flatten_all()?.to_vec1::<f32>()?;
    let score_v = candle_nn::ops::sigmoid(&cls_logits)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let anchors = raw.anchors.flatten_all()?.to_vec1::<f32>()?;
    let strides = raw.strides.flatten_all()?.to_vec1::<f32>()?;

    let mut cls_target = vec![0f32; b * classes * n];
    let mut positives = Vec::new();
    for (img, gts) in boxes.iter().enumerate() {
        let pred_box = |a: usize| {
            let s = strides[a];
            let d = |k: usize| dist_v[(img * 4 + k) * n + a];
            BoxXyxy {
                x1: (anchors[2 * a] - d(0)) * s,
                y1: (anchors[2 * a + 1] - d(1)) * s,
                x2: (anchors[2 * a] + d(2)) * s,
                y2: (anchors[2 * a + 1] + d(3)) * s,
            }
        };
        // Per anchor: (gt index, iou, metric).
        let mut claims: HashMap<usize, (usize, f32, f32)> = HashMap::new();
        for (g, gt) in gts.iter().enumerate() {
            let mut candidates: Vec<(usize, f32, f32)> = (0..n)
                .filter(|&a| {
                    let (ax, ay) = (anchors[2 * a] * strides[a], anchors[2 * a + 1] * strides[a]);
                    ax > gt.x1 && ax < gt.x2 && ay > gt.y1 && ay < gt.y2
                })
                .map(|a| {
                    let iou = pred_box(a).iou(gt);
                    let score = score_v[img * classes * n + a];
                    (a, iou, score.powf(ALPHA) * iou.powi(BETA))
                })
                .collect();
            if candidates.is_empty() {
                let (cx, cy) = gt.centre();
                let nearest = (0..n).filter(|&a| strides[a] == 8.0).min_by(|&p, &q| {
                    let dp = (anchors[2 * p] * 8.0 - cx).powi(2)
                        + (anchors[2 * p + 1] * 8.0 - cy).powi(2);
                    let dq = (anchors[2 * q] * 8.0 - cx).powi(2)
                        + (anchors[2 * q + 1] * 8.0 - cy).powi(2);
                    dp.total_cmp(&dq)
                });
                if let Some(a) = nearest {
                    let iou = pred_box(a).iou(gt);
                    candidates.push((a, iou, iou.powi(BETA)));
                }
            }
            candidates.sort_by(|p, q| q.2.total_cmp(&p.2));
            candidates.truncate(TOP_K);
            for (a, iou, metric) in candidates {
                let better = claims.get(&a).is_none_or(|&(_, other, _)| iou > other);
                if better {
                    claims.insert(a, (g, iou, metric));
                }
            }
        }
        let mut best_metric = vec![0f32; gts.len()];
        let mut best_iou = vec![0f32; gts.len()];
        for &(g, iou, metric) in claims.values() {
            best_metric[g] = best_metric[g].max(metric);
            best_iou[g] = best_iou[g].max(iou);
        }
        let mut claimed: Vec<_> = claims.into_iter().collect();
        claimed.sort_by_key(|(a, _)| *a);
        for (a, (g, _, metric)) in claimed {
            let weight = metric / (best_metric[g] + 1e-9) * best_iou[g];
            cls_target[img * classes * n + a] = weight;
            positives.push(Positive {
                flat: (img * n + a) as u32,
                anchor: (anchors[2 * a], anchors[2 * a + 1]),
                target: BoxXyxy {
                    x1: gts[g].x1 / strides[a],
                    y1: gts[g].y1 / strides[a],
                    x2: gts[g].x2 / strides[a],
                    y2: gts[g].y2 / strides[a],
                },
                weight,
            });
        }
    }
    let target_sum = f64::from(cls_target.iter().sum::<f32>()).max(1.0);
    let target = Tensor::from_vec(cls_target, (b, classes, n), device)?;
    let cls_loss = (bce_with_logits(&cls_logits, &target)?.sum_all()? / target_sum)?;

    let (box_loss, dfl_loss) = if positives.is_empty() {
        let zero = (dist.sum_all()? * 0.0)?;
        (zero.clone(), zero)
    } else {
        let p = positives.len();
        let idx = Tensor::from_vec(
            positives.iter().map(|q| q.flat).collect::<Vec<_>>(),
            p,
            device,
        )?;
        let weights = Tensor::from_vec(
            positives.iter().map(|q| q.weight).collect::<Vec<_>>(),
            p,
            device,
        )?;
        let anchor = Tensor::from_vec(
            positives
                .iter()
                .flat_map(|q| [q.anchor.0, q.anchor.1])
                .collect::<Vec<_>>(),
            (p, 2),
            device,
        )?;
        let tgt = Tensor::from_vec(
            positives
                .iter()
                .flat_map(|q| [q.target.x1, q.target.y1, q.target.x2, q.target.y2])
                .collect::<Vec<_>>(),
            (p, 4),
            device,
        )?;
        let d = dist
            .transpose(1, 2)?
            .reshape((b * n, 4))?
            .index_select(&idx, 0)?;
        let pred = Tensor::cat(
            &[(&anchor - d.i((.., 0..2))?)?, (&anchor + d.i((.., 2..4))?)?],
            1,
        )?;
        let giou = giou(&pred, &tgt)?;
        let box_loss = ((giou.affine(-1.0, 1.0)? * &weights)?.sum_all()? / target_sum)?;

        let logits = raw
            .logits
            .i((.., ..4 * REG_MAX))?
            .transpose(1, 2)?
            .reshape((b * n, 4 * REG_MAX))?
            .index_select(&idx, 0)?
            .reshape((p * 4, REG_MAX))?;
        let log_probs = candle_nn::ops::log_softmax(&logits, 1)?;
        let mut left = Vec::with_capacity(p * 4);
        let mut wl = Vec::with_capacity(p * 4);
        for q in &positives {
            let (ax, ay) = q.anchor;
            let t = &q.target;
            for side in [ax - t.x1, ay - t.y1, t.x2 - ax, t.y2 - ay] {
                let side = side.clamp(0.0, REG_MAX as f32 - 1.01);
                let l = side.floor();
                left.push(l as u32);
                wl.push(l + 1.0 - side);
            }
        }
        let right: Vec<u32> = left.iter().map(|l| l + 1).collect();
        let wr: Vec<f32> = wl.iter().map(|w| 1.0 - w).collect();
        let left = Tensor::from_vec(left, (p * 4, 1), device)?;
        let right = Tensor::from_vec(right, (p * 4, 1), device)?;
        let wl = Tensor::from_vec(wl, (p * 4, 1), device)?;
        let wr = Tensor::from_vec(wr, (p * 4, 1), device)?;
        let ce =
            ((log_probs.gather(&left, 1)? * wl)? + (log_probs.gather(&right, 1)? * wr)?)?.neg()?;
        let per_box = ce.reshape((p, 4))?.mean(1)?;
        let dfl_loss = ((per_box * &weights)?.sum_all()? / target_sum)?;
        (box_loss, dfl_loss)
    };
    let total = ((&box_loss * BOX_GAIN)? + (&cls_loss * CLS_GAIN)? + (&dfl_loss * DFL_GAIN)?)?;
    let parts = LossParts {
        boxes: box_loss.to_scalar::<f32>()?,
        classes: cls_loss.to_scalar::<f32>()?,
        dfl: dfl_loss.to_scalar::<f32>()?,
    };
    Ok((total, parts))
}

fn bce_with_logits(x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (x.relu()? - (x * t)?)? + softplus
}

/// Generalised IoU of matching rows of two `(n, 4)` corner-box tensors.
fn giou(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let col = |t: &Tensor, i: usize| t.i((.., i));
    let (ax1, ay1, ax2, ay2) = (col(a, 0)?, col(a, 1)?, col(a, 2)?, col(a, 3)?);
    let (bx1, by1, bx2, by2) = (col(b, 0)?, col(b, 1)?, col(b, 2)?, col(b, 3)?);
    let iw = (ax2.minimum(&bx2)? - ax1.maximum(&bx1)?)?.relu()?;
    let ih = (ay2.minimum(&by2)? - ay1.maximum(&by1)?)?.relu()?;
    let inter = (iw * ih)?;
    let area_a = ((&ax2 - &ax1)?.relu()? * (&ay2 - &ay1)?.relu()?)?;
    let area_b = ((&bx2 - &bx1)? * (&by2 - &by1)?)?;
    let union = ((area_a + area_b)? - &inter)?.affine(1.0, 1e-7)?;
    let iou = (&inter / &union)?;
    let cw = (ax2.maximum(&bx2)? - ax1.minimum(&bx1)?)?;
    let ch = (ay2.maximum(&by2)? - ay1.minimum(&by1)?)?;
    let hull = (cw * ch)?.affine(1.0, 1e-7)?;
    iou - ((&hull - &union)? / &hull)?
}

fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".ckpt");
    PathBuf::from(name)
}

fn model_tensors(varmap: &VarMap) -> Vec<(String, Tensor)> {
    let data = varmap.data().lock().map(|d| d.clone()).unwrap_or_default();
    let mut tensors: Vec<(String, Tensor)> = data
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn write_safetensors(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<(), MugError> {
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| MugError::UnsupportedModel(e.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The metadata written into trained weights.
pub fn weights_metadata(config: &TrainConfig, step: usize) -> HashMap<String, String> {
    HashMap::from([
        ("name".to_owned(), SHIPPED_NAME.to_owned()),
        ("classes".to_owned(), SHIPPED_CLASSES.to_owned()),
        ("variant".to_owned(), config.variant.name().to_owned()),
        ("input_size".to_owned(), config.image_size.to_string()),
        ("steps".to_owned(), step.to_string()),
        ("seed".to_owned(), config.seed.to_string()),
        (
            "trained_on".to_owned(),
            "h200 synthetic mug scenes".to_owned(),
        ),
    ])
}

/// Builds a freshly initialised training network: YOLOv8's bias priors (class logits start at
/// a 1 % prior per cell, box logits at 1) and the fixed DFL projection.
pub fn init_model(
    varmap: &VarMap,
    variant: Variant,
    image_size: u32,
    device: &Device,
) -> Result<YoloV8, MugError> {
    let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
    let shape = ModelShape {
        multiples: variant.multiples(),
        classes: 1,
    };
    let model = YoloV8::load(vb, shape, Mode::Train)?;
    let data = varmap.data().lock().map(|d| d.clone()).unwrap_or_default();
    for (name, var) in &data {
        if name == "head.dfl.conv.weight" {
            var.set(&dfl_weight(device)?)?;
        }
        for (i, stride) in super::model::STRIDES.iter().enumerate() {
            if name == &format!("head.cv3.{i}.2.bias") {
                let cells = (f64::from(image_size) / *stride as f64).powi(2);
                let prior = (5.0 / cells).ln();
                var.set(&Tensor::full(prior as f32, var.shape(), device)?)?;
            }
            if name == &format!("head.cv2.{i}.2.bias") {
                var.set(&Tensor::ones(var.shape(), DType::F32, device)?)?;
            }
        }
    }
    Ok(model)
}

/// Trains the detector, writing a checkpoint every `checkpoint_every` steps and the weights at
/// the end. With `resume`, continues from the checkpoint beside `out` when there is one.
pub fn train(config: &TrainConfig) -> Result<TrainSummary, MugError> {
    let device = super::detector::default_device();
    let varmap = VarMap::new();
    let model = init_model(&varmap, config.variant, config.image_size, &device)?;
    let named: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let params = ParamsAdamW {
        lr: config.learning_rate,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 5e-4,
    };
    let mut optimizer = ResumableAdamW::new(named.clone(), params)?;
    let ckpt = checkpoint_path(&config.out);
    let mut start = 0;
    if config.resume && ckpt.exists() {
        let bytes = std::fs::read(&ckpt)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| MugError::UnsupportedModel(e.to_string()))?;
        let step = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let tensors = candle_core::safetensors::load_buffer(&bytes, &device)?;
        for (name, var) in &named {
            if let Some(t) = tensors.get(name) {
                var.set(t)?;
            }
        }
        optimizer.restore(&tensors, step)?;
        start = step;
        eprintln!("resuming from {} at step {step}", ckpt.display());
    }
    let started = Instant::now();
    let mut recent: Vec<f32> = Vec::new();
    let tty = std::io::stderr().is_terminal();
    let save = |step: usize, optimizer: &ResumableAdamW| -> Result<(), MugError> {
        let mut tensors = model_tensors(&varmap);
        tensors.extend(optimizer.state());
        write_safetensors(&ckpt, tensors, weights_metadata(config, step))
    };
    for step in start..config.steps {
        let base = config
            .seed
            .wrapping_mul(1 << 32)
            .wrapping_add((step * config.batch) as u64);
        let batch = make_batch(
            (0..config.batch as u64).map(|i| base + i),
            config.image_size,
            &device,
        )?;
        let raw = model.forward_raw(&batch.images, true)?;
        let (total, parts) = loss(&model, &raw, &batch.boxes)?;
        let value = total.to_scalar::<f32>()?;
        if value.is_finite() {
            optimizer.set_learning_rate(learning_rate(step, config.steps, config.learning_rate));
            optimizer.step(&total.backward()?)?;
        }
        recent.push(value);
        if recent.len() > 50 {
            recent.remove(0);
        }
        let done = step + 1;
        if done % config.checkpoint_every.max(1) == 0 || done == config.steps {
            save(done, &optimizer)?;
        }
        if tty || done % 10 == 0 || done == config.steps {
            let elapsed = started.elapsed().as_secs_f64();
            let rate = (done - start) as f64 / elapsed.max(1e-9);
            let eta = (config.steps - done) as f64 / rate.max(1e-9);
            let width = 30;
            let filled = done * width / config.steps.max(1);
            let mean = recent.iter().sum::<f32>() / recent.len() as f32;
            let line = format!(
                "[{}{}] {done}/{} loss {mean:.3} (box {:.3} cls {:.3} dfl {:.3}) {:.2} steps/s eta {:.0}s",
                "#".repeat(filled),
                ".".repeat(width - filled),
                config.steps,
                parts.boxes,
                parts.classes,
                parts.dfl,
                rate,
                eta
            );
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}")
            } else {
                writeln!(err, "{line}")
            };
        }
    }
    if tty {
        eprintln!();
    }
    write_safetensors(
        &config.out,
        model_tensors(&varmap),
        weights_metadata(config, config.steps),
    )?;
    Ok(TrainSummary {
        steps: config.steps,
        final_loss: if recent.is_empty() {
            f32::NAN
        } else {
            recent.iter().sum::<f32>() / recent.len() as f32
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}
