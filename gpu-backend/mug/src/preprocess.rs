//! Untrusted bytes to network input: the upload policy's header check, a decode under explicit
//! memory limits, and letterboxing to a multiple of 32.

use candle_core::{Device, Tensor};
use image::{ImageFormat, ImageReader, Limits, RgbImage};
use shared::upload::{ImageKind, MAX_IMAGE_DIMENSION, inspect};

use super::error::MugError;

/// Most bytes a decoder may hold at once: a 4096×4096 image at 16 bits per RGBA channel, plus
/// half again for the decoder's own buffers.
pub const MAX_DECODE_ALLOC: u64 = 4096 * 4096 * 8 * 3 / 2;

/// Grey (114 of 255) that fills the letterbox borders, as in YOLOv8.
pub const PAD_VALUE: u8 = 114;

/// Decodes a JPEG, PNG or WebP upload to RGB. The header is checked first by
/// [`shared::upload::inspect`] (magic bytes, agreement with `declared_content_type`, 1 to 4096
/// pixels a side), so a header that claims a huge image is refused before anything is allocated;
/// the decoder then runs under [`MAX_DECODE_ALLOC`] and the same width and height caps.
pub fn decode_image(
    bytes: &[u8],
    declared_content_type: Option<&str>,
) -> Result<RgbImage, MugError> {
    let info = inspect(bytes, declared_content_type)?;
    let format = match info.kind {
        ImageKind::Jpeg => ImageFormat::Jpeg,
        ImageKind::Png => ImageFormat::Png,
        ImageKind::Webp => ImageFormat::WebP,
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_DIMENSION);
    limits.max_image_height = Some(MAX_IMAGE_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| MugError::Decode(e.to_string()))?;
    Ok(image.into_rgb8())
}

/// How an image was placed in the network input, to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Network input pixels per image pixel.
    pub scale: f32,
    /// Left border, in input pixels.
    pub pad_x: f32,
    /// Top border, in input pixels.
    pub pad_y: f32,
    /// Input width: a multiple of 32.
    pub input_width: usize,
    /// Input height: a multiple of 32.
    pub input_height: usize,
    /// Width of the resized image inside the borders.
    pub content_width: u32,
    /// Height of the resized image inside the borders.
    pub content_height: u32,
    /// The original image width.
    pub image_width: u32,
    /// The original image height.
    pub image_height: u32,
}

impl Letterbox {
    /// Plans the letterbox of a `width`×`height` image whose longer side becomes `size` pixels
    /// (rounded up to a multiple of 32, at least 32); the shorter side keeps the aspect ratio and
    /// is padded up to the next multiple of 32, borders split evenly.
    pub fn plan(width: u32, height: u32, size: u32) -> Letterbox {
        let size = size.max(1).div_ceil(32) * 32;
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let scale = size as f32 / w.max(h);
        let new_w = ((w * scale).round() as usize).clamp(1, size as usize);
        let new_h = ((h * scale).round() as usize).clamp(1, size as usize);
        let input_width = new_w.div_ceil(32) * 32;
        let input_height = new_h.div_ceil(32) * 32;
        Letterbox {
            scale,
            pad_x: ((input_width - new_w) / 2) as f32,
            pad_y: ((input_height - new_h) / 2) as f32,
            input_width,
            input_height,
            content_width: new_w as u32,
            content_height: new_h as u32,
            image_width: width,
            image_height: height,
        }
    }

    /// Maps a point of the network input back to the original image, clamped to the image.
    pub fn to_image(&self, x: f32, y: f32) -> (f32, f32) {
        let ix = (x - self.pad_x) / self.scale;
        let iy = (y - self.pad_y) / self.scale;
        (
            ix.clamp(0.0, self.image_width as f32),
            iy.clamp(0.0, self.image_height as f32),
        )
    }

    /// Maps a point of the original image into the network input.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (x * self.scale + self.pad_x, y * self.scale + self.pad_y)
    }
}

/// Letterboxes `image` (longer side to `size`, see [`Letterbox::plan`]) into CHW floats in 0..1.
pub fn letterbox_pixels(image: &RgbImage, size: u32) -> (Vec<f32>, Letterbox) {
    let plan = Letterbox::plan(image.width(), image.height(), size);
    let (new_w, new_h) = (plan.content_width, plan.content_height);
    let resized;
    let source = if (new_w, new_h) == image.dimensions() {
        image
    } else {
        resized =
            image::imageops::resize(image, new_w, new_h, image::imageops::FilterType::Triangle);
        &resized
    };
    let (w, h) = (plan.input_width, plan.input_height);
    let mut data = vec![f32::from(PAD_VALUE) / 255.0; 3 * w * h];
    let (ox, oy) = (plan.pad_x as usize, plan.pad_y as usize);
    for (x, y, pixel) in source.enumerate_pixels() {
        let (x, y) = (x as usize + ox, y as usize + oy);
        if x < w && y < h {
            for c in 0..3 {
                data[c * w * h + y * w + x] = f32::from(pixel[c]) / 255.0;
            }
        }
    }
    (data, plan)
}

/// Letterboxes `image` into a `(1, 3, h, w)` tensor on `device`.
pub fn letterbox_tensor(
    image: &RgbImage,
    size: u32,
    device: &Device,
) -> Result<(Tensor, Letterbox), MugError> {
    let (data, plan) = letterbox_pixels(image, size);
    let tensor = Tensor::from_vec(data, (1, 3, plan.input_height, plan.input_width), device)?;
    Ok((tensor, plan))
}
