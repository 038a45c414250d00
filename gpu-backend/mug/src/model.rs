//! The YOLOv8 network in candle-nn, with the tensor names of the YOLOv8 weights converted for
//! candle (`net.b1.0.conv.weight`, `fpn.n1.cv1.bn.running_mean`, `head.cv2.0.2.bias`, …), so
//! converted COCO checkpoints and the project's own weights load through the same code.

use candle_core::{D, DType, Device, IndexOp, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, VarBuilder};

/// Bins of the distribution focal loss head: each box side is a distribution over 0..16 strides.
pub const REG_MAX: usize = 16;
/// The strides of the three detection levels, finest first.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// The width and depth multipliers that size a YOLOv8 network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Multiples {
    /// Scales the number of bottlenecks in every C2f block.
    pub depth: f64,
    /// Scales the number of channels.
    pub width: f64,
    /// Extra width of the deepest level.
    pub ratio: f64,
}

/// The named YOLOv8 sizes, plus `P` (pico), the small variant the project ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Pico: a third of the depth and an eighth of the width of YOLOv8-l; the shipped model.
    P,
    /// YOLOv8-n.
    N,
    /// YOLOv8-s.
    S,
    /// YOLOv8-m.
    M,
    /// YOLOv8-l.
    L,
    /// YOLOv8-x.
    X,
}

impl Variant {
    /// Every variant, smallest first.
    pub const ALL: [Variant; 6] = [
        Variant::P,
        Variant::N,
        Variant::S,
        Variant::M,
        Variant::L,
        Variant::X,
    ];

    /// The variant's multipliers (those of the Ultralytics configurations for n to x).
    pub const fn multiples(self) -> Multiples {
        let (depth, width, ratio) = match self {
            Variant::P => (0.33, 0.125, 2.0),
            Variant::N => (0.33, 0.25, 2.0),
            Variant::S => (0.33, 0.50, 2.0),
            Variant::M => (0.67, 0.75, 1.5),
            Variant::L => (1.00, 1.00, 1.0),
            Variant::X => (1.00, 1.25, 1.0),
        };
        Multiples {
            depth,
            width,
            ratio,
        }
    }

    /// The one-letter name (`p`, `n`, `s`, `m`, `l`, `x`).
    pub const fn name(self) -> &'static str {
        match self {
            Variant::P => "p",
            Variant::N => "n",
            Variant::S => "s",
            Variant::M => "m",
            Variant::L => "l",
            Variant::X => "x",
        }
    }

    /// The variant with this one-letter name.
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl Multiples {
    fn channels(&self, base: f64) -> usize {
        (base * self.width) as usize
    }

    fn repeats(&self, base: f64) -> usize {
        (base * self.depth).round() as usize
    }

    /// Channels of the three feature maps the head reads (strides 8, 16, 32).
    pub fn filters(&self) -> (usize, usize, usize) {
        (
            self.channels(256.),
            self.channels(512.),
            (512. * self.width * self.ratio) as usize,
        )
    }
}

/// Whether batch norms run as separate layers that can learn, or folded into their convolutions
/// for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep each batch norm; `train = true` in the forward pass uses batch statistics.
    Train,
    /// Fold each batch norm into its convolution (faster, same results as eval mode).
    Inference,
}

/// Convolution, batch norm and SiLU: YOLOv8's `Conv`.
#[derive(Debug, Clone)]
struct ConvBlock {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvBlock {
    fn load(
        vb: VarBuilder,
        mode: Mode,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: k / 2,
            stride,
            groups: 1,
            dilation: 1,
            cudnn_fwd_algo: None,
        };
        let conv = candle_nn::conv2d_no_bias(c_in, c_out, k, cfg, vb.pp("conv"))?;
        let bn = candle_nn::batch_norm(c_out, 1e-3, vb.pp("bn"))?;
        Ok(match mode {
            Mode::Train => ConvBlock { conv, bn: Some(bn) },
            Mode::Inference => ConvBlock {
                conv: conv.absorb_bn(&bn)?,
                bn: None,
            },
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = if train {
            conv_im2col(xs, self.conv.weight(), self.conv.config())?
        } else {
            self.conv.forward(xs)?
        };
        let ys = match &self.bn {
            Some(bn) => bn.forward_t(&ys, train)?,
            None => ys,
        };
        candle_nn::ops::silu(&ys)
    }
}

/// The same convolution as `Conv2d::forward` (no bias, groups 1, dilation 1), written as shifted
/// slices and one matrix product. Its gradient is all matrix products and copies, several times
/// faster on CPU than candle's `conv_transpose2d` path, so training uses it.
fn conv_im2col(xs: &Tensor, weight: &Tensor, cfg: &Conv2dConfig) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (c_out, _, k, _) = weight.dims4()?;
    let (s, p) = (cfg.stride, cfg.padding);
    let h_out = (h + 2 * p - k) / s + 1;
    let w_out = (w + 2 * p - k) / s + 1;
    let columns = if k == 1 && s == 1 && p == 0 {
        xs.reshape((b, c, h * w))?
    } else {
        let padded = if p > 0 {
            xs.pad_with_zeros(2, p, p + s)?
                .pad_with_zeros(3, p, p + s)?
        } else {
            xs.pad_with_zeros(2, 0, s)?.pad_with_zeros(3, 0, s)?
        };
        let mut taps = Vec::with_capacity(k * k);
        for dy in 0..k {
            for dx in 0..k {
                let tap = padded.narrow(2, dy, h_out * s)?.narrow(3, dx, w_out * s)?;
                let tap = if s == 1 {
                    tap
                } else {
                    tap.reshape((b, c, h_out, s, w_out, s))?
                        .i((.., .., .., 0, .., 0))?
                };
                taps.push(tap);
            }
        }
        Tensor::stack(&taps, 2)?.reshape((b, c * k * k, h_out * w_out))?
    };
    let kernel = weight.reshape((c_out, c * k * k))?;
    kernel
        .broadcast_matmul(&columns)?
        .reshape((b, c_out, h_out, w_out))
}

/// Two 3×3 convolutions with an optional residual connection.
#[derive(Debug, Clone)]
struct Bottleneck {
    cv1: ConvBlock,
    cv2: ConvBlock,
    residual: bool,
}

impl Bottleneck {
    fn load(vb: VarBuilder, mode: Mode, c_in: usize, c_out: usize, shortcut: bool) -> Result<Self> {
        Ok(Bottleneck {
            cv1: ConvBlock::load(vb.pp("cv1"), mode, c_in, c_out, 3, 1)?,
            cv2: ConvBlock::load(vb.pp("cv2"), mode, c_out, c_out, 3, 1)?,
            residual: shortcut && c_in == c_out,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self.cv2.forward(&self.cv1.forward(xs, train)?, train)?;
        if self.residual { xs + ys } else { Ok(ys) }
    }
}

/// YOLOv8's C2f: split, a chain of bottlenecks, concatenate every intermediate, fuse.
#[derive(Debug, Clone)]
struct C2f {
    cv1: ConvBlock,
    cv2: ConvBlock,
    bottlenecks: Vec<Bottleneck>,
}

impl C2f {
    fn load(
        vb: VarBuilder,
        mode: Mode,
        c_in: usize,
        c_out: usize,
        n: usize,
        shortcut: bool,
    ) -> Result<Self> {
        let hidden = c_out / 2;
        let bottlenecks = (0..n)
            .map(|i| {
                Bottleneck::load(
                    vb.pp(format!("bottleneck.{i}")),
                    mode,
                    hidden,
                    hidden,
                    shortcut,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(C2f {
            cv1: ConvBlock::load(vb.pp("cv1"), mode, c_in, 2 * hidden, 1, 1)?,
            cv2: ConvBlock::load(vb.pp("cv2"), mode, (2 + n) * hidden, c_out, 1, 1)?,
            bottlenecks,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut parts = self.cv1.forward(xs, train)?.chunk(2, 1)?;
        for bottleneck in &self.bottlenecks {
            let last = parts
                .last()
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("empty C2f split".into()))?;
            parts.push(bottleneck.forward(&last, train)?);
        }
        self.cv2.forward(&Tensor::cat(&parts, 1)?, train)
    }
}

/// Spatial pyramid pooling, fast: three chained 5×5 max pools.
#[derive(Debug, Clone)]
struct Sppf {
    cv1: ConvBlock,
    cv2: ConvBlock,
    k: usize,
}

impl Sppf {
    fn load(vb: VarBuilder, mode: Mode, c_in: usize, c_out: usize, k: usize) -> Result<Self> {
        let hidden = c_in / 2;
        Ok(Sppf {
            cv1: ConvBlock::load(vb.pp("cv1"), mode, c_in, hidden, 1, 1)?,
            cv2: ConvBlock::load(vb.pp("cv2"), mode, hidden * 4, c_out, 1, 1)?,
            k,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let pool = |t: &Tensor| max_pool_same(t, self.k);
        let x1 = self.cv1.forward(xs, train)?;
        let x2 = pool(&x1)?;
        let x3 = pool(&x2)?;
        let x4 = pool(&x3)?;
        self.cv2
            .forward(&Tensor::cat(&[&x1, &x2, &x3, &x4], 1)?, train)
    }
}

/// A `k`×`k` max pool with stride 1 whose output keeps the input size (borders replicate the edge,
/// which for a max equals padding with −∞). Written as shifted maxima, separably, so it has a
/// gradient: candle's `max_pool2d` has none when the stride differs from the kernel.
fn max_pool_same(xs: &Tensor, k: usize) -> Result<Tensor> {
    let pad = k / 2;
    let (_, _, h, w) = xs.dims4()?;
    let padded = xs.pad_with_same(3, pad, pad)?;
    let mut rows = padded.narrow(3, 0, w)?;
    for shift in 1..k {
        rows = rows.maximum(&padded.narrow(3, shift, w)?)?;
    }
    let padded = rows.pad_with_same(2, pad, pad)?;
    let mut out = padded.narrow(2, 0, h)?;
    for shift in 1..k {
        out = out.maximum(&padded.narrow(2, shift, h)?)?;
    }
    Ok(out)
}

/// The backbone (`net.*`).
#[derive(Debug, Clone)]
struct DarkNet {
    b1_0: ConvBlock,
    b1_1: ConvBlock,
    b2_0: C2f,
    b2_1: ConvBlock,
    b2_2: C2f,
    b3_0: ConvBlock,
    b3_1: C2f,
    b4_0: ConvBlock,
    b4_1: C2f,
    b5: Sppf,
}

impl DarkNet {
    fn load(vb: VarBuilder, mode: Mode, m: Multiples) -> Result<Self> {
        let c = |base: f64| m.channels(base);
        let deep = (512. * m.width * m.ratio) as usize;
        Ok(DarkNet {
            b1_0: ConvBlock::load(vb.pp("b1.0"), mode, 3, c(64.), 3, 2)?,
            b1_1: ConvBlock::load(vb.pp("b1.1"), mode, c(64.), c(128.), 3, 2)?,
            b2_0: C2f::load(vb.pp("b2.0"), mode, c(128.), c(128.), m.repeats(3.), true)?,
            b2_1: ConvBlock::load(vb.pp("b2.1"), mode, c(128.), c(256.), 3, 2)?,
            b2_2: C2f::load(vb.pp("b2.2"), mode, c(256.), c(256.), m.repeats(6.), true)?,
            b3_0: ConvBlock::load(vb.pp("b3.0"), mode, c(256.), c(512.), 3, 2)?,
            b3_1: C2f::load(vb.pp("b3.1"), mode, c(512.), c(512.), m.repeats(6.), true)?,
            b4_0: ConvBlock::load(vb.pp("b4.0"), mode, c(512.), deep, 3, 2)?,
            b4_1: C2f::load(vb.pp("b4.1"), mode, deep, deep, m.repeats(3.), true)?,
            b5: Sppf::load(vb.pp("b5.0"), mode, deep, deep, 5)?,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<(Tensor, Tensor, Tensor)> {
        let x1 = self.b1_1.forward(&self.b1_0.forward(xs, train)?, train)?;
        let x2 = self.b2_0.forward(&x1, train)?;
        let p3 = self.b2_2.forward(&self.b2_1.forward(&x2, train)?, train)?;
        let p4 = self.b3_1.forward(&self.b3_0.forward(&p3, train)?, train)?;
        let x4 = self.b4_1.forward(&self.b4_0.forward(&p4, train)?, train)?;
        let p5 = self.b5.forward(&x4, train)?;
        Ok((p3, p4, p5))
    }
}

/// The feature pyramid (`fpn.*`): top-down then bottom-up.
#[derive(Debug, Clone)]
struct Neck {
    n1: C2f,
    n2: C2f,
    n3: ConvBlock,
    n4: C2f,
    n5: ConvBlock,
    n6: C2f,
}

fn upsample2(xs: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    xs.upsample_nearest2d(2 * h, 2 * w)
}

impl Neck {
    fn load(vb: VarBuilder, mode: Mode, m: Multiples) -> Result<Self> {
        let c = |base: f64| m.channels(base);
        let n = m.repeats(3.);
        let (f1, f2, f3) = m.filters();
        Ok(Neck {
            n1: C2f::load(vb.pp("n1"), mode, f3 + f2, c(512.), n, false)?,
            n2: C2f::load(vb.pp("n2"), mode, c(512.) + f1, c(256.), n, false)?,
            n3: ConvBlock::load(vb.pp("n3"), mode, c(256.), c(256.), 3, 2)?,
            n4: C2f::load(vb.pp("n4"), mode, c(256.) + c(512.), c(512.), n, false)?,
            n5: ConvBlock::load(vb.pp("n5"), mode, c(512.), c(512.), 3, 2)?,
            n6: C2f::load(vb.pp("n6"), mode, c(512.) + f3, f3, n, false)?,
        })
    }

    fn forward(&self, p3: &Tensor, p4: &Tensor, p5: &Tensor, train: bool) -> Result<[Tensor; 3]> {
        let x = self
            .n1
            .forward(&Tensor::cat(&[&upsample2(p5)?, p4], 1)?, train)?;
        let h1 = self
            .n2
            .forward(&Tensor::cat(&[&upsample2(&x)?, p3], 1)?, train)?;
        let h2 = self.n4.forward(
            &Tensor::cat(&[&self.n3.forward(&h1, train)?, &x], 1)?,
            train,
        )?;
        let h3 = self.n6.forward(
            &Tensor::cat(&[&self.n5.forward(&h2, train)?, p5], 1)?,
            train,
        )?;
        Ok([h1, h2, h3])
    }
}

/// One branch of the head at one level: two 3×3 blocks and a 1×1 projection with bias.
#[derive(Debug, Clone)]
struct HeadBranch {
    block0: ConvBlock,
    block1: ConvBlock,
    proj: Conv2d,
}

impl HeadBranch {
    fn load(vb: VarBuilder, mode: Mode, c_in: usize, hidden: usize, c_out: usize) -> Result<Self> {
        Ok(HeadBranch {
            block0: ConvBlock::load(vb.pp("0"), mode, c_in, hidden, 3, 1)?,
            block1: ConvBlock::load(vb.pp("1"), mode, hidden, hidden, 3, 1)?,
            proj: candle_nn::conv2d(hidden, c_out, 1, Conv2dConfig::default(), vb.pp("2"))?,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = self
            .block1
            .forward(&self.block0.forward(xs, train)?, train)?;
        self.proj.forward(&ys)
    }
}

/// The raw output of the head, before boxes are decoded.
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// `(batch, 4 * REG_MAX + classes, anchors)`: box-side logits, then class logits, for the
    /// anchors of all three levels (stride 8 first, row-major within a level).
    pub logits: Tensor,
    /// `(anchors, 2)`: anchor centres in grid units (cell index + 0.5).
    pub anchors: Tensor,
    /// `(anchors, 1)`: the stride of each anchor, in input pixels.
    pub strides: Tensor,
}

/// The detection head (`head.*`): box distributions (`cv2`), class logits (`cv3`), and the fixed
/// `dfl` projection that turns a distribution into a distance.
#[derive(Debug, Clone)]
struct DetectHead {
    cv2: [HeadBranch; 3],
    cv3: [HeadBranch; 3],
    dfl: Conv2d,
}

impl DetectHead {
    fn load(
        vb: VarBuilder,
        mode: Mode,
        classes: usize,
        filters: (usize, usize, usize),
    ) -> Result<Self> {
        let cls_hidden = filters.0.max(classes);
        let box_hidden = (filters.0 / 4).max(4 * REG_MAX);
        let fs = [filters.0, filters.1, filters.2];
        let branch = |name: &str, i: usize, hidden: usize, out: usize| {
            HeadBranch::load(vb.pp(format!("{name}.{i}")), mode, fs[i], hidden, out)
        };
        Ok(DetectHead {
            cv2: [
                branch("cv2", 0, box_hidden, 4 * REG_MAX)?,
                branch("cv2", 1, box_hidden, 4 * REG_MAX)?,
                branch("cv2", 2, box_hidden, 4 * REG_MAX)?,
            ],
            cv3: [
                branch("cv3", 0, cls_hidden, classes)?,
                branch("cv3", 1, cls_hidden, classes)?,
                branch("cv3", 2, cls_hidden, classes)?,
            ],
            dfl: candle_nn::conv2d_no_bias(
                REG_MAX,
                1,
                1,
                Conv2dConfig::default(),
                vb.pp("dfl.conv"),
            )?,
        })
    }

    fn forward(&self, levels: &[Tensor; 3], train: bool) -> Result<RawOutput> {
        let mut flat = Vec::with_capacity(3);
        let mut anchors = Vec::with_capacity(3);
        let mut strides = Vec::with_capacity(3);
        let device = levels[0].device();
        for (i, xs) in levels.iter().enumerate() {
            let boxes = self.cv2[i].forward(xs, train)?;
            let classes = self.cv3[i].forward(xs, train)?;
            let level = Tensor::cat(&[&boxes, &classes], 1)?;
            let (b, c, h, w) = level.dims4()?;
            flat.push(level.reshape((b, c, h * w))?);
            let (a, s) = level_anchors(h, w, STRIDES[i], device)?;
            anchors.push(a);
            strides.push(s);
        }
        Ok(RawOutput {
            logits: Tensor::cat(&flat, 2)?,
            anchors: Tensor::cat(&anchors, 0)?,
            strides: Tensor::cat(&strides, 0)?,
        })
    }

    /// `(batch, 4 + classes, anchors)`: box centre x, y, width, height in input pixels, then
    /// class probabilities.
    fn decode(&self, raw: &RawOutput) -> Result<Tensor> {
        let (b, _, n) = raw.logits.dims3()?;
        let dist = raw.logits.i((.., ..4 * REG_MAX))?.contiguous()?;
        let cls = raw.logits.i((.., 4 * REG_MAX..))?;
        let dist = dist.reshape((b, 4, REG_MAX, n))?.transpose(1, 2)?;
        let dist = candle_nn::ops::softmax(&dist, 1)?;
        let dist = self.dfl.forward(&dist.contiguous()?)?.reshape((b, 4, n))?;
        let anchors = raw.anchors.t()?.unsqueeze(0)?;
        let strides = raw.strides.t()?.unsqueeze(0)?;
        let lt = dist.i((.., 0..2))?;
        let rb = dist.i((.., 2..4))?;
        let x1y1 = anchors.broadcast_sub(&lt)?;
        let x2y2 = anchors.broadcast_add(&rb)?;
        let centre = ((&x1y1 + &x2y2)? * 0.5)?.broadcast_mul(&strides)?;
        let size = (&x2y2 - &x1y1)?.broadcast_mul(&strides)?;
        Tensor::cat(&[&centre, &size, &candle_nn::ops::sigmoid(&cls)?], 1)
    }
}

fn level_anchors(h: usize, w: usize, stride: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut points = Vec::with_capacity(h * w * 2);
    for y in 0..h {
        for x in 0..w {
            points.push(x as f32 + 0.5);
            points.push(y as f32 + 0.5);
        }
    }
    let anchors = Tensor::from_vec(points, (h * w, 2), device)?;
    let strides = Tensor::full(stride as f32, (h * w, 1), device)?;
    Ok((anchors, strides))
}

/// What a network looks like: its size and how many classes it scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelShape {
    /// Width and depth multipliers.
    pub multiples: Multiples,
    /// Number of classes.
    pub classes: usize,
}

/// A YOLOv8 network (`net`, `fpn`, `head`).
#[derive(Debug, Clone)]
pub struct YoloV8 {
    net: DarkNet,
    fpn: Neck,
    head: DetectHead,
    shape: ModelShape,
}

impl YoloV8 {
    /// Builds the network from `vb`, which must hold every tensor of `shape` under the YOLOv8
    /// candle names (a `VarMap`-backed builder creates them instead).
    pub fn load(vb: VarBuilder, shape: ModelShape, mode: Mode) -> Result<Self> {
        if shape.classes == 0 {
            candle_core::bail!("a detector needs at least one class");
        }
        let m = shape.multiples;
        Ok(YoloV8 {
            net: DarkNet::load(vb.pp("net"), mode, m)?,
            fpn: Neck::load(vb.pp("fpn"), mode, m)?,
            head: DetectHead::load(vb.pp("head"), mode, shape.classes, m.filters())?,
            shape,
        })
    }

    /// The network's size and classes.
    pub fn shape(&self) -> ModelShape {
        self.shape
    }

    /// Runs the network on `(batch, 3, h, w)` pixels in 0..1, with `h` and `w` multiples of 32.
    pub fn forward_raw(&self, xs: &Tensor, train: bool) -> Result<RawOutput> {
        let (_, _, h, w) = xs.dims4()?;
        if h % 32 != 0 || w % 32 != 0 || h == 0 || w == 0 {
            candle_core::bail!("input {h}x{w} is not a non-zero multiple of 32");
        }
        let (p3, p4, p5) = self.net.forward(xs, train)?;
        let levels = self.fpn.forward(&p3, &p4, &p5, train)?;
        self.head.forward(&levels, train)
    }

    /// Predictions for `(batch, 3, h, w)` pixels in 0..1: `(batch, 4 + classes, anchors)` with
    /// box centre x, y, width and height in input pixels, then class probabilities.
    pub fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        let raw = self.forward_raw(xs, false)?;
        self.head.decode(&raw)
    }

    /// The expected distance of each box side in strides, `(batch, 4, anchors)`, from the raw
    /// box logits; differentiable, for the training loss.
    pub fn side_distances(&self, raw: &RawOutput) -> Result<Tensor> {
        let (b, _, n) = raw.logits.dims3()?;
        let dist = raw.logits.i((.., ..4 * REG_MAX))?.contiguous()?;
        let probs = candle_nn::ops::softmax(&dist.reshape((b, 4, REG_MAX, n))?, 2)?;
        let bins = Tensor::arange(0u32, REG_MAX as u32, raw.logits.device())?
            .to_dtype(DType::F32)?
            .reshape((1, 1, REG_MAX, 1))?;
        probs.broadcast_mul(&bins)?.sum(D::Minus2)
    }
}

/// The fixed weight of the DFL projection (`head.dfl.conv.weight`): bins 0..16, never learned.
pub fn dfl_weight(device: &Device) -> Result<Tensor> {
    Tensor::arange(0u32, REG_MAX as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((1, REG_MAX, 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    #[test]
    fn im2col_convolution_equals_candle_conv2d() {
        let device = Device::Cpu;
        let xs = Tensor::arange(0u32, 2 * 3 * 9 * 7, &device)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .reshape((2, 3, 9, 7))
            .unwrap()
            .sin()
            .unwrap();
        for (k, stride) in [(3, 1), (3, 2), (1, 1), (1, 2)] {
            let weight = Tensor::arange(0u32, (4 * 3 * k * k) as u32, &device)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .reshape((4, 3, k, k))
                .unwrap()
                .cos()
                .unwrap();
            let cfg = Conv2dConfig {
                padding: k / 2,
                stride,
                ..Default::default()
            };
            let expected = Conv2d::new(weight.clone(), None, cfg).forward(&xs).unwrap();
            let got = conv_im2col(&xs, &weight, &cfg).unwrap();
            assert_eq!(got.dims(), expected.dims(), "k {k} stride {stride}");
            let diff = (got - expected).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-4,
                "k {k} stride {stride}"
            );
        }
    }

    #[test]
    fn max_pool_same_keeps_size_and_takes_window_maxima() {
        let device = Device::Cpu;
        let xs = Tensor::from_vec(
            vec![1f32, 5., 2., 0., 3., -1., 4., 2., 9.],
            (1, 1, 3, 3),
            &device,
        )
        .unwrap();
        let ys = max_pool_same(&xs, 3).unwrap();
        assert_eq!(
            ys.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![5., 5., 5., 5., 9., 9., 4., 9., 9.]
        );
    }

    #[test]
    fn pico_has_the_yolov8_names_and_a_small_size() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let shape = ModelShape {
            multiples: Variant::P.multiples(),
            classes: 1,
        };
        let model = YoloV8::load(vb, shape, Mode::Train).unwrap();
        let data = varmap.data().lock().unwrap();
        for name in [
            "net.b1.0.conv.weight",
            "net.b1.0.bn.running_mean",
            "net.b2.0.cv1.conv.weight",
            "net.b2.0.bottleneck.0.cv2.bn.weight",
            "net.b5.0.cv2.conv.weight",
            "fpn.n1.cv1.conv.weight",
            "fpn.n6.cv2.bn.running_var",
            "head.cv2.0.2.bias",
            "head.cv3.2.2.weight",
            "head.dfl.conv.weight",
        ] {
            assert!(data.contains_key(name), "{name}");
        }
        assert_eq!(data["net.b1.0.conv.weight"].dims(), &[8, 3, 3, 3]);
        assert_eq!(data["head.cv3.0.2.weight"].dims(), &[1, 32, 1, 1]);
        let params: usize = data
            .iter()
            .filter(|(k, _)| !k.contains("running"))
            .map(|(_, v)| v.elem_count())
            .sum();
        assert!((200_000..1_000_000).contains(&params), "{params}");
        drop(data);
        let xs = Tensor::zeros((1, 3, 64, 96), DType::F32, &Device::Cpu).unwrap();
        let pred = model.predict(&xs).unwrap();
        assert_eq!(pred.dims(), &[1, 5, 8 * 12 + 4 * 6 + 2 * 3]);
        assert!(
            model
                .predict(&Tensor::zeros((1, 3, 60, 96), DType::F32, &Device::Cpu).unwrap())
                .is_err()
        );
    }
}
