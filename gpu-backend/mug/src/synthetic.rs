//! Synthetic table scenes with mugs at known places: the training and evaluation data of the
//! shipped detector. Every scene follows from a seed, the same on every machine.
//!
//! A scene is a wall and a table seen from the side, or a table seen from above; mugs of many
//! shapes, colours and sizes with their handle to the left, to the right, towards any direction
//! from above, or hidden; clutter that is not a mug (books, boxes, phones, plates, balls,
//! bottles, pens); a light gradient, shadows, blur and noise.

use image::RgbImage;

use super::postprocess::BoxXyxy;
use kernel::rng::SplitMix64;

/// A small deterministic generator ([`SplitMix64`]): the same seed gives the same scenes
/// everywhere.
#[derive(Debug, Clone)]
pub struct SceneRng(SplitMix64);

impl SceneRng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> SceneRng {
        SceneRng(SplitMix64::new(seed ^ 0x5EED_5EED_1234_5678))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A standard normal sample.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    fn colour(&mut self) -> [f32; 3] {
        match self.int(0, 9) {
            0 => {
                let v = self.range(0.85, 0.98);
                [v, v, v]
            }
            1 => {
                let v = self.range(0.05, 0.2);
                [v, v, v]
            }
            _ => hsv(self.unit(), self.range(0.3, 0.95), self.range(0.35, 0.95)),
        }
    }
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = (h.fract() * 6.0).min(5.999);
    let f = h6.fract();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h6 as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

fn shade(c: [f32; 3], k: f32) -> [f32; 3] {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Which way a mug's handle points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Handle {
    /// Seen from the side, handle on the left.
    Left,
    /// Seen from the side, handle on the right.
    Right,
    /// Seen from the side, handle behind the mug.
    Hidden,
    /// Seen from above, handle pointing at this angle (radians, 0 = right, clockwise).
    Angle(f32),
}

/// One mug to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct MugSpec {
    /// Centre of the body, in pixels (from above: the centre of the rim).
    pub x: f32,
    /// Bottom of the body, in pixels (from above: the centre of the rim).
    pub base_y: f32,
    /// Body width (from above: rim diameter), in pixels.
    pub width: f32,
    /// Body height / width, from the side.
    pub aspect: f32,
    /// Top width / bottom width, from the side.
    pub taper: f32,
    /// Body colour.
    pub colour: [f32; 3],
    /// A band of another colour around the body, at this fraction of the height.
    pub band: Option<([f32; 3], f32)>,
    /// What fills the mug (seen through the rim).
    pub fill: [f32; 3],
    /// Handle direction.
    pub handle: Handle,
    /// Handle size relative to the body height.
    pub handle_size: f32,
    /// Handle thickness relative to its size.
    pub handle_thickness: f32,
}

/// The kinds of clutter, none of which is a mug.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DistractorKind {
    /// A book or box: a rectangle with a darker side.
    Block,
    /// A phone: a dark rounded slab with a lighter screen.
    Phone,
    /// A plate: a flat ellipse with a rim.
    Plate,
    /// A ball or fruit: a shaded disc.
    Ball,
    /// A bottle: a narrow body, a neck and a cap.
    Bottle,
    /// A pen: a thin slanted stroke.
    Pen,
}

/// One piece of clutter.
#[derive(Debug, Clone, PartialEq)]
pub struct DistractorSpec {
    /// What it is.
    pub kind: DistractorKind,
    /// Centre, in pixels.
    pub x: f32,
    /// Centre, in pixels.
    pub y: f32,
    /// Width, in pixels.
    pub width: f32,
    /// Height, in pixels.
    pub height: f32,
    /// Main colour.
    pub colour: [f32; 3],
    /// Slant of a pen, radians.
    pub angle: f32,
}

/// How the scene is seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// Wall above `horizon` (pixels from the top), table below.
    Side {
        /// Where the table meets the wall.
        horizon: f32,
    },
    /// The table fills the frame.
    Top,
}

/// Everything needed to render a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpec {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Side or top view.
    pub view: View,
    /// Wall colour (side view).
    pub wall: [f32; 3],
    /// Table colour.
    pub table: [f32; 3],
    /// Grain stripes on the table: (strength, period in pixels).
    pub grain: Option<(f32, f32)>,
    /// Light gradient: direction (radians) and strength (0 = flat).
    pub light: (f32, f32),
    /// Clutter, drawn before the mugs.
    pub distractors: Vec<DistractorSpec>,
    /// Mugs, drawn in order.
    pub mugs: Vec<MugSpec>,
    /// Box-blur passes.
    pub blur: u32,
    /// Standard deviation of the pixel noise (0..1 scale).
    pub noise: f32,
    /// Seed of the noise.
    pub noise_seed: u64,
}

/// A rendered scene and the box of every mug in it.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The picture.
    pub image: RgbImage,
    /// Tight boxes of the mugs (body, rim and handle), in pixels, in [`SceneSpec::mugs`] order.
    pub mugs: Vec<BoxXyxy>,
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

/// Tracks the pixels one object covers.
#[derive(Debug, Clone, Copy)]
struct Extent {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
}

impl Extent {
    fn empty() -> Extent {
        Extent {
            x1: f32::MAX,
            y1: f32::MAX,
            x2: f32::MIN,
            y2: f32::MIN,
        }
    }

    fn add(&mut self, x: usize, y: usize) {
        self.x1 = self.x1.min(x as f32);
        self.y1 = self.y1.min(y as f32);
        self.x2 = self.x2.max(x as f32 + 1.0);
        self.y2 = self.y2.max(y as f32 + 1.0);
    }

    fn to_box(self) -> Option<BoxXyxy> {
        (self.x2 > self.x1 && self.y2 > self.y1).then_some(BoxXyxy {
            x1: self.x1,
            y1: self.y1,
            x2: self.x2,
            y2: self.y2,
        })
    }
}

impl Canvas {
    /// Paints every pixel whose centre satisfies `paint` within the bounds, recording it.
    fn fill(
        &mut self,
        bounds: (f32, f32, f32, f32),
        extent: &mut Extent,
        mut paint: impl FnMut(f32, f32) -> Option<[f32; 3]>,
    ) {
        let x0 = bounds.0.floor().max(0.0) as usize;
        let y0 = bounds.1.floor().max(0.0) as usize;
        let x1 = (bounds.2.ceil().max(0.0) as usize).min(self.w);
        let y1 = (bounds.3.ceil().max(0.0) as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                if let Some(c) = paint(x as f32 + 0.5, y as f32 + 0.5) {
                    self.px[y * self.w + x] = c;
                    extent.add(x, y);
                }
            }
        }
    }

    fn darken(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, strength: f32) {
        let mut ignored = Extent::empty();
        let bounds = (cx - rx, cy - ry, cx + rx, cy + ry);
        let px = self.px.clone();
        let w = self.w;
        self.fill(bounds, &mut ignored, |x, y| {
            let d = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2);
            (d < 1.0).then(|| {
                let old = px[(y as usize) * w + x as usize];
                shade(old, 1.0 - strength * (1.0 - d))
            })
        });
    }
}

/// A plain desk scene, seen from the side, with mugs at known places: each `(x, base_y, width)`
/// is a mug's centre line, the row its base stands on and its body width, in pixels. Mugs
/// alternate red, white and blue, handles right and left; one blue block sits on the wall as
/// clutter. Tests and the example image of the API use it for mugs whose position is known.
pub fn desk_scene(width: u32, height: u32, mugs: &[(f32, f32, f32)]) -> SceneSpec {
    SceneSpec {
        width,
        height,
        view: View::Side {
            horizon: height as f32 / 6.0,
        },
        wall: [0.85, 0.85, 0.8],
        table: [0.55, 0.38, 0.22],
        grain: Some((0.05, 9.0)),
        light: (0.5, 0.3),
        distractors: vec![DistractorSpec {
            kind: DistractorKind::Block,
            x: width as f32 / 2.0,
            y: height as f32 / 4.0,
            width: width as f32 / 8.0,
            height: height as f32 / 12.0,
            colour: [0.2, 0.3, 0.7],
            angle: 0.0,
        }],
        mugs: mugs
            .iter()
            .enumerate()
            .map(|(i, &(x, base_y, width))| MugSpec {
                x,
                base_y,
                width,
                aspect: 1.1,
                taper: 1.0,
                colour: [[0.8, 0.1, 0.1], [0.95, 0.95, 0.95], [0.1, 0.4, 0.8]][i % 3],
                band: None,
                fill: [0.25, 0.13, 0.06],
                handle: if i % 2 == 0 {
                    Handle::Right
                } else {
                    Handle::Left
                },
                handle_size: 0.6,
                handle_thickness: 0.35,
            })
            .collect(),
        blur: 0,
        noise: 0.01,
        noise_seed: 7,
    }
}

/// Renders a scene exactly as specified.
pub fn render(spec: &SceneSpec) -> Scene {
    let (w, h) = (spec.width.max(1) as usize, spec.height.max(1) as usize);
    let mut canvas = Canvas {
        w,
        h,
        px: vec![[0.0; 3]; w * h],
    };
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32, y as f32);
            let c = match spec.view {
                View::Side { horizon } if fy < horizon => {
                    shade(spec.wall, 0.9 + 0.1 * fy / horizon.max(1.0))
                }
                View::Side { horizon } if fy < horizon + 2.0 => shade(spec.table, 0.6),
                _ => {
                    let grain = spec.grain.map_or(1.0, |(s, period)| {
                        1.0 + s
                            * ((fy / period + (fx / (period * 7.0)).sin() * 0.8)
                                * std::f32::consts::TAU)
                                .sin()
                    });
                    shade(spec.table, grain)
                }
            };
            canvas.px[y * w + x] = c;
        }
    }
    for d in &spec.distractors {
        draw_distractor(&mut canvas, d, spec.view);
    }
    let mugs = spec
        .mugs
        .iter()
        .filter_map(|m| draw_mug(&mut canvas, m, spec.view).to_box())
        .collect();
    let (dir, strength) = spec.light;
    let (dx, dy) = (dir.cos(), dir.sin());
    let diag = ((w * w + h * h) as f32).sqrt().max(1.0);
    let mut rng = SceneRng::new(spec.noise_seed);
    for _ in 0..spec.blur {
        box_blur(&mut canvas);
    }
    let mut image = RgbImage::new(w as u32, h as u32);
    for (i, pixel) in image.pixels_mut().enumerate() {
        let (x, y) = (
            (i % w) as f32 - w as f32 / 2.0,
            (i / w) as f32 - h as f32 / 2.0,
        );
        let light = 1.0 + strength * (x * dx + y * dy) / diag;
        let c = canvas.px[i];
        for ch in 0..3 {
            let noisy = c[ch] * light + spec.noise * rng.normal();
            pixel[ch] = (noisy.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    Scene { image, mugs }
}

fn box_blur(canvas: &mut Canvas) {
    let (w, h) = (canvas.w, canvas.h);
    let src = canvas.px.clone();
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            let mut n = 0.0;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let p = src[yy * w + xx];
                    acc = [acc[0] + p[0], acc[1] + p[1], acc[2] + p[2]];
                    n += 1.0;
                }
            }
            canvas.px[y * w + x] = [acc[0] / n, acc[1] / n, acc[2] / n];
        }
    }
}

fn draw_mug(canvas: &mut Canvas, m: &MugSpec, view: View) -> Extent {
    let mut extent = Extent::empty();
    match view {
        View::Side { .. } => draw_mug_side(canvas, m, &mut extent),
        View::Top => draw_mug_top(canvas, m, &mut extent),
    }
    extent
}

fn draw_mug_side(canvas: &mut Canvas, m: &MugSpec, extent: &mut Extent) {
    let bw = m.width.max(2.0);
    let bh = bw * m.aspect;
    let rim = bw * 0.14;
    let (cx, bottom) = (m.x, m.base_y);
    let top = bottom - bh;
    let half_at = |y: f32| {
        let t = ((bottom - y) / bh).clamp(0.0, 1.0);
        bw / 2.0 * (1.0 + (m.taper - 1.0) * t)
    };
    canvas.darken(cx + bw * 0.15, bottom, bw * 0.75, rim * 1.2, 0.45);
    let hr = bh * m.handle_size / 2.0;
    let handle_y = top + bh * 0.45;
    if let Handle::Left | Handle::Right = m.handle {
        let sign = if m.handle == Handle::Left { -1.0 } else { 1.0 };
        let side = half_at(handle_y);
        let hcx = cx + sign * side;
        let (rx, ry) = (hr * 0.9, hr);
        let inner = 1.0 - m.handle_thickness;
        let colour = m.colour;
        canvas.fill(
            (
                hcx - rx - 1.0,
                handle_y - ry - 1.0,
                hcx + rx + 1.0,
                handle_y + ry + 1.0,
            ),
            extent,
            |x, y| {
                let (dx, dy) = ((x - hcx) / rx, (y - handle_y) / ry);
                let d = (dx * dx + dy * dy).sqrt();
                (sign * (x - hcx) > 0.0 && d <= 1.0 && d >= inner)
                    .then(|| shade(colour, 0.75 + 0.25 * (1.0 - dy.abs())))
            },
        );
    }
    let light_pos = 0.35;
    canvas.fill(
        (cx - bw, top - rim, cx + bw, bottom + rim),
        extent,
        |x, y| {
            let half = half_at(y);
            let u = (x - cx) / half;
            if u.abs() > 1.0 {
                return None;
            }
            let curve = rim * (1.0 - u * u).sqrt();
            if y > bottom + curve * 0.6 || y < top {
                return None;
            }
            let mut c = m.colour;
            if let Some((band, at)) = m.band {
                let by = top + bh * at;
                if (y - by - curve * 0.4).abs() < bh * 0.08 {
                    c = band;
                }
            }
            let lit = 0.55
                + 0.45
                    * ((u - light_pos + 0.5) * std::f32::consts::FRAC_PI_2 * 1.2)
                        .cos()
                        .max(0.0);
            let highlight = if (u + light_pos).abs() < 0.08 {
                0.25
            } else {
                0.0
            };
            Some([
                (c[0] * lit + highlight).min(1.0),
                (c[1] * lit + highlight).min(1.0),
                (c[2] * lit + highlight).min(1.0),
            ])
        },
    );
    let top_half = half_at(top);
    let colour = m.colour;
    let fill = m.fill;
    canvas.fill(
        (cx - top_half, top - rim, cx + top_half, top + rim),
        extent,
        |x, y| {
            let d = ((x - cx) / top_half).powi(2) + ((y - top) / rim).powi(2);
            if d > 1.0 {
                None
            } else if d > 0.72 {
                Some(shade(colour, 1.05).map(|v| v.min(1.0)))
            } else {
                Some(shade(fill, 0.55 + 0.3 * (y - top + rim) / (2.0 * rim)))
            }
        },
    );
}

fn draw_mug_top(canvas: &mut Canvas, m: &MugSpec, extent: &mut Extent) {
    let r = m.width.max(4.0) / 2.0;
    let (cx, cy) = (m.x, m.base_y);
    canvas.darken(cx + r * 0.2, cy + r * 0.2, r * 1.15, r * 1.15, 0.35);
    if let Handle::Angle(a) = m.handle {
        let (ux, uy) = (a.cos(), a.sin());
        let len = r * (0.55 + m.handle_size * 0.5);
        let thick = r * (0.2 + m.handle_thickness * 0.3);
        let colour = m.colour;
        let reach = r + len + thick;
        canvas.fill(
            (cx - reach, cy - reach, cx + reach, cy + reach),
            extent,
            |x, y| {
                let (dx, dy) = (x - cx, y - cy);
                let along = dx * ux + dy * uy;
                let across = -dx * uy + dy * ux;
                let inside = along > r * 0.8 && along < r + len && across.abs() < thick;
                let hole = along > r * 1.05
                    && along < r + len - thick * 0.7
                    && across.abs() < thick * 0.45;
                (inside && !hole).then(|| shade(colour, 0.85))
            },
        );
    }
    let colour = m.colour;
    let fill = m.fill;
    canvas.fill((cx - r, cy - r, cx + r, cy + r), extent, |x, y| {
        let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / r;
        if d > 1.0 {
            None
        } else if d > 0.82 {
            Some(
                shade(colour, 0.8 + 0.2 * (1.0 - (x - cx + y - cy) / (2.0 * r)))
                    .map(|v| v.min(1.0)),
            )
        } else {
            Some(shade(fill, 0.6 + 0.3 * d))
        }
    });
}

fn draw_distractor(canvas: &mut Canvas, d: &DistractorSpec, view: View) {
    let mut ignored = Extent::empty();
    let (cx, cy, hw, hh) = (d.x, d.y, d.width / 2.0, d.height / 2.0);
    let c = d.colour;
    let bounds = (cx - hw - 2.0, cy - hh - 2.0, cx + hw + 2.0, cy + hh + 2.0);
    match d.kind {
        DistractorKind::Block => {
            if matches!(view, View::Side { .. }) {
                canvas.darken(cx + hw * 0.2, cy + hh, hw * 1.1, hh * 0.15 + 2.0, 0.4);
            }
            canvas.fill(bounds, &mut ignored, |x, y| {
                let (u, v) = ((x - cx) / hw, (y - cy) / hh);
                (u.abs() <= 1.0 && v.abs() <= 1.0).then(|| {
                    if u > 0.75 {
                        shade(c, 0.65)
                    } else if v < -0.8 {
                        shade(c, 1.15).map(|x| x.min(1.0))
                    } else if ((v * 6.0).fract().abs() < 0.05) && u > 0.5 {
                        shade(c, 0.8)
                    } else {
                        c
                    }
                })
            });
        }
        DistractorKind::Phone => canvas.fill(bounds, &mut ignored, |x, y| {
            let (u, v) = (((x - cx) / hw).abs(), ((y - cy) / hh).abs());
            let corner = (u - 0.8).max(0.0).powi(2) + (v - 0.85).max(0.0).powi(2);
            (u <= 1.0 && v <= 1.0 && corner < 0.03).then(|| {
                if u < 0.85 && v < 0.88 {
                    [0.15 + c[0] * 0.3, 0.18 + c[1] * 0.3, 0.25 + c[2] * 0.3]
                } else {
                    [0.06, 0.06, 0.07]
                }
            })
        }),
        DistractorKind::Plate => canvas.fill(bounds, &mut ignored, |x, y| {
            let dd = ((x - cx) / hw).powi(2) + ((y - cy) / hh).powi(2);
            (dd <= 1.0).then(|| if dd > 0.6 { shade(c, 0.92) } else { c })
        }),
        DistractorKind::Ball => {
            let r = hw.min(hh);
            canvas.fill(bounds, &mut ignored, |x, y| {
                let dd = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / r;
                (dd <= 1.0).then(|| {
                    shade(
                        c,
                        1.0 - 0.45 * ((x - cx + y - cy) / (2.0 * r) + 0.5).clamp(0.0, 1.0),
                    )
                })
            })
        }
        DistractorKind::Bottle => canvas.fill(bounds, &mut ignored, |x, y| {
            let t = (y - (cy - hh)) / (2.0 * hh);
            let half = if t < 0.08 {
                0.28
            } else if t < 0.3 {
                0.3 + (t - 0.08) / 0.22 * 0.7
            } else {
                1.0
            } * hw;
            let u = (x - cx) / half;
            (u.abs() <= 1.0 && (0.0..=1.0).contains(&t)).then(|| {
                if t < 0.08 {
                    shade(c, 0.5)
                } else {
                    shade(c, 0.6 + 0.4 * (1.0 - u * u))
                }
            })
        }),
        DistractorKind::Pen => {
            let (ux, uy) = (d.angle.cos(), d.angle.sin());
            let len = hw.max(hh);
            let thick = (d.height.min(d.width) * 0.06).max(1.2);
            canvas.fill(
                (cx - len, cy - len, cx + len, cy + len),
                &mut ignored,
                |x, y| {
                    let (dx, dy) = (x - cx, y - cy);
                    let along = dx * ux + dy * uy;
                    let across = -dx * uy + dy * ux;
                    (along.abs() < len && across.abs() < thick).then_some(c)
                },
            )
        }
    }
}

/// Draws a random scene specification of `width`×`height` from `seed`: 0 to 4 mugs (none in
/// about one scene in eight), 0 to 5 pieces of clutter, side or top view.
pub fn random_spec(seed: u64, width: u32, height: u32) -> SceneSpec {
    let mut rng = SceneRng::new(seed);
    let (w, h) = (width.max(32) as f32, height.max(32) as f32);
    let short = w.min(h);
    let view = if rng.chance(0.7) {
        View::Side {
            horizon: h * rng.range(0.15, 0.55),
        }
    } else {
        View::Top
    };
    let table = match rng.int(0, 3) {
        0 => hsv(
            rng.range(0.05, 0.11),
            rng.range(0.4, 0.8),
            rng.range(0.3, 0.75),
        ),
        1 => {
            let v = rng.range(0.15, 0.95);
            [v, v, v * rng.range(0.95, 1.05)]
        }
        _ => rng.colour(),
    };
    let grain = rng
        .chance(0.45)
        .then(|| (rng.range(0.03, 0.12), rng.range(4.0, 20.0)));
    let floor = match view {
        View::Side { horizon } => horizon,
        View::Top => 0.0,
    };
    let mug_count = match rng.int(0, 15) {
        0 | 1 => 0,
        2..=7 => 1,
        8..=11 => 2,
        12..=13 => 3,
        _ => 4,
    };
    let mut taken: Vec<BoxXyxy> = Vec::new();
    let mut mugs = Vec::new();
    for _ in 0..mug_count * 8 {
        if mugs.len() == mug_count {
            break;
        }
        let width = short * rng.range(0.09, 0.36) / (1.0 + 0.3 * (mug_count as f32 - 1.0).max(0.0));
        let aspect = rng.range(0.75, 1.45);
        let top_view = view == View::Top;
        let handle = if top_view {
            Handle::Angle(rng.range(0.0, std::f32::consts::TAU))
        } else {
            match rng.int(0, 11) {
                0 => Handle::Hidden,
                1..=5 => Handle::Left,
                _ => Handle::Right,
            }
        };
        let handle_size = rng.range(0.45, 0.75);
        let (reach_x, reach_up, reach_down) = if top_view {
            let r = width / 2.0 + width * (0.3 + handle_size * 0.3);
            (r, r, r)
        } else {
            (
                width * 0.5 + width * aspect * handle_size * 0.5,
                width * aspect + width * 0.15,
                width * 0.12,
            )
        };
        let x = rng.range(reach_x * 0.6, w - reach_x * 0.6);
        let base_y = rng.range((floor + reach_up * 0.6).min(h - 1.0), h - reach_down * 0.5);
        let bbox = BoxXyxy {
            x1: x - reach_x,
            y1: base_y - reach_up,
            x2: x + reach_x,
            y2: base_y + reach_down,
        };
        if taken.iter().any(|t| t.iou(&bbox) > 0.0) {
            continue;
        }
        taken.push(bbox);
        let colour = rng.colour();
        mugs.push(MugSpec {
            x,
            base_y,
            width,
            aspect,
            taper: if rng.chance(0.6) {
                1.0
            } else {
                rng.range(0.8, 1.25)
            },
            colour,
            band: rng
                .chance(0.3)
                .then(|| (rng.colour(), rng.range(0.25, 0.7))),
            fill: if rng.chance(0.5) {
                [0.25, 0.13, 0.06]
            } else {
                shade(colour, 0.5)
            },
            handle,
            handle_size,
            handle_thickness: rng.range(0.25, 0.5),
        });
    }
    mugs.sort_by(|a, b| a.base_y.total_cmp(&b.base_y));
    let mut distractors = Vec::new();
    for _ in 0..rng.int(0, 5) {
        let kind = match rng.int(0, 5) {
            0 => DistractorKind::Block,
            1 => DistractorKind::Phone,
            2 => DistractorKind::Plate,
            3 => DistractorKind::Ball,
            4 => DistractorKind::Bottle,
            _ => DistractorKind::Pen,
        };
        let size = short * rng.range(0.08, 0.4);
        let (dw, dh) = match (kind, view) {
            (DistractorKind::Block, _) => (size, size * rng.range(0.3, 1.3)),
            (DistractorKind::Phone, View::Top) => (size * 0.5, size),
            (DistractorKind::Phone, _) => (size, size * 0.15),
            (DistractorKind::Plate, View::Top) => (size, size),
            (DistractorKind::Plate, _) => (size * 1.3, size * rng.range(0.15, 0.35)),
            (DistractorKind::Ball, _) => (size * 0.6, size * 0.6),
            (DistractorKind::Bottle, View::Top) => (size * 0.3, size * 0.3),
            (DistractorKind::Bottle, _) => (size * 0.35, size * 1.3),
            (DistractorKind::Pen, _) => (size, size),
        };
        let x = rng.range(0.0, w);
        let y = rng.range((floor + dh * 0.3).min(h - 1.0), h);
        let y = if matches!(view, View::Side { .. }) && kind != DistractorKind::Pen {
            y - dh / 2.0
        } else {
            y
        };
        distractors.push(DistractorSpec {
            kind,
            x,
            y,
            width: dw,
            height: dh,
            colour: rng.colour(),
            angle: rng.range(-0.6, 0.6),
        });
    }
    SceneSpec {
        width: w as u32,
        height: h as u32,
        view,
        wall: hsv(rng.unit(), rng.range(0.0, 0.35), rng.range(0.5, 0.95)),
        table,
        grain,
        light: (rng.range(0.0, std::f32::consts::TAU), rng.range(0.0, 0.7)),
        distractors,
        mugs,
        blur: if rng.chance(0.35) { rng.int(1, 2) } else { 0 },
        noise: rng.range(0.0, 0.05),
        noise_seed: rng.next_u64(),
    }
}

/// A random scene whose longer side is `size` pixels and whose aspect ratio is 1 to 1.67, from
/// `seed`: the distribution the shipped model is trained and evaluated on.
pub fn random_scene(seed: u64, size: u32) -> Scene {
    let mut rng = SceneRng::new(seed.wrapping_mul(31).wrapping_add(7));
    let short = (size as f32 * rng.range(0.6, 1.0)).round() as u32;
    let (w, h) = if rng.chance(0.7) {
        (size, short)
    } else {
        (short, size)
    };
    render(&random_spec(seed, w, h))
}
