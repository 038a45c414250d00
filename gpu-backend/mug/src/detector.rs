//! The detector: weights loaded into a YOLOv8 network, images in, [`Analysis`] out.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
use sha2::Digest;

use crate::analysis::{Analysis, BoundingBox, Detection};
use crate::classes::{COCO_CLASSES, MUG_LIKE_CLASSES};
use crate::error::MugError;
use crate::model::{Mode, ModelShape, Variant, YoloV8};
use crate::positioning::{self, Frame, Point};
use crate::postprocess::{RawDetection, Thresholds};
use crate::{postprocess, preprocess};

/// Longer side of the network input when the weights do not say.
pub const DEFAULT_INPUT_SIZE: u32 = 640;

/// The shipped model: YOLOv8-p trained on the project's synthetic scenes, one class (`mug`).
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../models/mug-detector.safetensors");

/// How an image is analysed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnalyzeOptions {
    /// Confidence and IoU thresholds.
    pub thresholds: Thresholds,
    /// Offsets are measured from this point (image pixels); the image centre when `None`.
    pub reference_point: Option<Point>,
    /// Millimetres per pixel, for offsets in millimetres.
    pub mm_per_pixel: Option<f32>,
    /// Longer side of the network input; the model's own size when `None`.
    pub input_size: Option<u32>,
}

/// One upload of a batch: its bytes, declared type and options.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub bytes: &'a [u8],
    pub declared_type: Option<&'a str>,
    pub options: &'a AnalyzeOptions,
}

/// An upload decoded and letterboxed, waiting for its batch.
struct Prepared {
    index: usize,
    pixels: Vec<f32>,
    letterbox: preprocess::Letterbox,
    prepare_ms: f64,
}

/// A loaded detector: the network, its class names and which of them count as mugs.
#[derive(Debug, Clone)]
pub struct Detector {
    model: YoloV8,
    classes: Vec<String>,
    mug_classes: Vec<usize>,
    input_size: u32,
    version: String,
    device: Device,
}

/// The device detection runs on: the first CUDA GPU when built with `cuda` and one is present,
/// otherwise the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(device) = Device::cuda_if_available(0) {
            return device;
        }
    }
    Device::Cpu
}

impl Detector {
    /// The shipped mug detector, on [`default_device`].
    pub fn shipped() -> Result<Detector, MugError> {
        Detector::shipped_on(&default_device())
    }

    /// The shipped mug detector, on `device`.
    pub fn shipped_on(device: &Device) -> Result<Detector, MugError> {
        Detector::from_safetensors(SHIPPED_WEIGHTS, device)
    }

    /// Loads YOLOv8 weights from a safetensors file (the candle naming), on [`default_device`].
    pub fn from_file(path: &std::path::Path) -> Result<Detector, MugError> {
        Detector::from_file_on(path, &default_device())
    }

    /// Loads YOLOv8 weights from a safetensors file (the candle naming), on `device`.
    pub fn from_file_on(path: &std::path::Path, device: &Device) -> Result<Detector, MugError> {
        let bytes = std::fs::read(path)?;
        Detector::from_safetensors(&bytes, device)
    }

    /// Loads YOLOv8 weights from safetensors bytes. The variant and class count are read from
    /// the tensor shapes; class names from the `classes` metadata entry (comma-separated), else
    /// the COCO names for an 80-class model, else `class_0`, `class_1`, …; the input size from
    /// the `input_size` metadata entry, else [`DEFAULT_INPUT_SIZE`].
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Detector, MugError> {
        let unsupported = |e: &dyn std::fmt::Display| MugError::UnsupportedModel(e.to_string());
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| unsupported(&e))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(bytes, device)?;
        let shape = infer_shape(&tensors)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let model = YoloV8::load(vb, shape, Mode::Inference).map_err(|e| unsupported(&e))?;
        let classes = class_names(metadata.get("classes").map(String::as_str), shape.classes);
        let mut mug_classes: Vec<usize> = classes
            .iter()
            .enumerate()
            .filter(|(_, name)| MUG_LIKE_CLASSES.contains(&name.as_str()))
            .map(|(i, _)| i)
            .collect();
        if mug_classes.is_empty() {
            mug_classes = (0..classes.len()).collect();
        }
        let input_size = metadata
            .get("input_size")
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|s| (32..=4096).contains(s))
            .unwrap_or(DEFAULT_INPUT_SIZE);
        let digest = hex::encode(&sha2::Sha256::digest(bytes)[..4]);
        let variant = Variant::ALL
            .into_iter()
            .find(|v| v.multiples() == shape.multiples)
            .map_or("custom", Variant::name);
        let name = metadata
            .get("name")
            .cloned()
            .unwrap_or_else(|| "yolov8".to_owned());
        Ok(Detector {
            model,
            classes,
            mug_classes,
            input_size,
            version: format!("{name}-{variant}-{digest}"),
            device: device.clone(),
        })
    }

    /// The class names, by class index.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Names the weights: the `name` metadata entry (or `yolov8`), the variant and the first
    /// four bytes of the SHA-256 of the file.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The longer side of the network input used when the caller does not choose one.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The network.
    pub fn model(&self) -> &YoloV8 {
        &self.model
    }

    /// Finds the mugs in `image` (mug-like classes only, see [`MUG_LIKE_CLASSES`]), best first,
    /// boxes in image pixels. `input_size` is the longer side of the network input (rounded up
    /// to a multiple of 32).
    pub fn detect(
        &self,
        image: &RgbImage,
        thresholds: &Thresholds,
        input_size: u32,
    ) -> Result<Vec<Detection>, MugError> {
        let (input, letterbox) = preprocess::letterbox_tensor(image, input_size, &self.device)?;
        let raw = self.detect_raw(&input, thresholds)?;
        Ok(self.to_detections(raw, &letterbox))
    }

    /// Maps raw detections of a letterboxed input back to image pixels and class names.
    fn to_detections(
        &self,
        raw: Vec<RawDetection>,
        letterbox: &preprocess::Letterbox,
    ) -> Vec<Detection> {
        raw.into_iter()
            .map(|d| {
                let bbox = postprocess::to_image_box(&d.bbox, letterbox);
                Detection {
                    bbox: BoundingBox {
                        top_left: Point {
                            x: bbox.x1,
                            y: bbox.y1,
                        },
                        bottom_right: Point {
                            x: bbox.x2,
                            y: bbox.y2,
                        },
                        confidence: d.score,
                    },
                    class_name: self.classes.get(d.class).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Mug detections of one image's predictions `(rows, anchors)`, in input coordinates.
    fn raw_from_predictions(
        &self,
        pred: &Tensor,
        thresholds: &Thresholds,
    ) -> Result<Vec<RawDetection>, MugError> {
        let (rows, anchors) = pred.dims2()?;
        let values = pred.flatten_all()?.to_vec1::<f32>()?;
        Ok(postprocess::detections_from_predictions(
            &values,
            rows.saturating_sub(4),
            anchors,
            thresholds,
            Some(&self.mug_classes),
        ))
    }

    /// Analyses several uploads in as few forward passes as possible: images whose letterboxed
    /// inputs have the same shape run as one batch on the device. Outcome `i` belongs to upload
    /// `i`; a bad upload fails alone. Each analysis's `processing_time_ms` is its decode time
    /// plus its share of its batch.
    pub fn analyze_batch(&self, uploads: &[Upload<'_>]) -> Vec<Result<Analysis, MugError>> {
        let mut outcomes: Vec<Option<Result<Analysis, MugError>>> =
            (0..uploads.len()).map(|_| None).collect();
        // Decoded and letterboxed inputs, grouped by input shape.
        let mut groups: std::collections::BTreeMap<(usize, usize), Vec<Prepared>> =
            std::collections::BTreeMap::new();
        for (index, upload) in uploads.iter().enumerate() {
            let started = Instant::now();
            match preprocess::decode_image(upload.bytes, upload.declared_type) {
                Ok(image) => {
                    let size = upload.options.input_size.unwrap_or(self.input_size);
                    let (pixels, letterbox) = preprocess::letterbox_pixels(&image, size);
                    groups
                        .entry((letterbox.input_height, letterbox.input_width))
                        .or_default()
                        .push(Prepared {
                            index,
                            pixels,
                            letterbox,
                            prepare_ms: started.elapsed().as_secs_f64() * 1000.0,
                        });
                }
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        }
        for ((height, width), group) in groups {
            let started = Instant::now();
            let count = group.len();
            let predictions = Tensor::from_vec(
                group
                    .iter()
                    .flat_map(|p| p.pixels.iter().copied())
                    .collect::<Vec<f32>>(),
                (count, 3, height, width),
                &self.device,
            )
            .and_then(|input| self.model.predict(&input));
            let predictions = match predictions {
                Ok(p) => p,
                Err(e) => {
                    let message = e.to_string();
                    for p in &group {
                        outcomes[p.index] = Some(Err(MugError::Tensor(candle_core::Error::Msg(
                            message.clone(),
                        ))));
                    }
                    continue;
                }
            };
            let share_ms = started.elapsed().as_secs_f64() * 1000.0 / count as f64;
            for (row, prepared) in group.into_iter().enumerate() {
                let upload = &uploads[prepared.index];
                let outcome = predictions
                    .get(row)
                    .map_err(MugError::from)
                    .and_then(|pred| self.raw_from_predictions(&pred, &upload.options.thresholds))
                    .map(|raw| {
                        let detections = self.to_detections(raw, &prepared.letterbox);
                        let mut analysis = self.position_all(
                            detections,
                            prepared.letterbox.image_width,
                            prepared.letterbox.image_height,
                            upload.options,
                        );
                        analysis.processing_time_ms = prepared.prepare_ms + share_ms;
                        analysis
                    });
                outcomes[prepared.index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(MugError::Decode("not analysed".into()))))
            .collect()
    }

    /// Runs the network on one prepared `(1, 3, h, w)` input and returns its mug detections in
    /// input coordinates.
    pub fn detect_raw(
        &self,
        input: &Tensor,
        thresholds: &Thresholds,
    ) -> Result<Vec<RawDetection>, MugError> {
        let pred = self.model.predict(input)?.squeeze(0)?;
        self.raw_from_predictions(&pred, thresholds)
    }

    /// Decodes `bytes` under the upload policy and the decode limits, finds the mugs and
    /// positions each of them.
    pub fn analyze(
        &self,
        bytes: &[u8],
        declared_content_type: Option<&str>,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, MugError> {
        let started = Instant::now();
        let image = preprocess::decode_image(bytes, declared_content_type)?;
        let mut analysis = self.analyze_image(&image, options)?;
        analysis.processing_time_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(analysis)
    }

    /// Finds and positions the mugs of an already decoded image.
    pub fn analyze_image(
        &self,
        image: &RgbImage,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, MugError> {
        let started = Instant::now();
        let size = options.input_size.unwrap_or(self.input_size);
        let detections = self.detect(image, &options.thresholds, size)?;
        let mut analysis = self.position_all(detections, image.width(), image.height(), options);
        analysis.processing_time_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(analysis)
    }

    /// Positions every detection of a `width`×`height` image; the time is left at 0.
    fn position_all(
        &self,
        detections: Vec<Detection>,
        width: u32,
        height: u32,
        options: &AnalyzeOptions,
    ) -> Analysis {
        let frame = Frame {
            width,
            height,
            reference_point: options.reference_point,
            mm_per_pixel: options.mm_per_pixel,
        };
        let positioning = detections
            .iter()
            .enumerate()
            .map(|(i, d)| positioning::position(i, &d.bbox.to_xyxy(), d.bbox.confidence, &frame))
            .collect();
        Analysis {
            mug_count: detections.len(),
            detections,
            positioning,
            processing_time_ms: 0.0,
            model_version: self.version.clone(),
        }
    }
}

fn class_names(listed: Option<&str>, count: usize) -> Vec<String> {
    if let Some(list) = listed {
        let names: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).collect();
        if names.len() == count {
            return names;
        }
    }
    if count == COCO_CLASSES.len() {
        return COCO_CLASSES.iter().map(|s| (*s).to_owned()).collect();
    }
    (0..count).map(|i| format!("class_{i}")).collect()
}

/// Reads the variant and class count from the tensor shapes of a YOLOv8 checkpoint.
fn infer_shape(tensors: &HashMap<String, Tensor>) -> Result<ModelShape, MugError> {
    let dim0 = |name: &str| -> Result<usize, MugError> {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| MugError::UnsupportedModel(format!("missing tensor {name}")))?;
        Ok(tensor.dims().first().copied().unwrap_or(0))
    };
    let stem = dim0("net.b1.0.conv.weight")?;
    let deep = dim0("net.b4.0.conv.weight")?;
    let classes = dim0("head.cv3.0.2.weight")?;
    let count = |prefix: &str| {
        (0..)
            .take_while(|i| {
                tensors.contains_key(&format!("{prefix}.bottleneck.{i}.cv1.conv.weight"))
            })
            .count()
    };
    let (short, long) = (count("net.b2.0"), count("net.b2.2"));
    let variant = Variant::ALL.into_iter().find(|v| {
        let m = v.multiples();
        (64. * m.width) as usize == stem
            && (512. * m.width * m.ratio) as usize == deep
            && (3. * m.depth).round() as usize == short
            && (6. * m.depth).round() as usize == long
    });
    match variant {
        Some(v) if classes > 0 => Ok(ModelShape {
            multiples: v.multiples(),
            classes,
        }),
        _ => Err(MugError::UnsupportedModel(format!(
            "no YOLOv8 variant has a {stem}-channel stem, {deep} deep channels and {short}/{long} bottlenecks (classes: {classes})"
        ))),
    }
}
