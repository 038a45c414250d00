//! Where each detected mug stands in the frame: a named position, the offset from the image
//! centre (or a reference point) in pixels and, with a calibration, in millimetres.

use serde::{Deserialize, Serialize};

use super::postprocess::BoxXyxy;

/// A mug is centred when its relative position is closer than this to 0.5 on both axes.
pub const CENTRE_BAND: f32 = 0.3;
/// A mug is at an edge when its relative position is at most this far from that edge.
pub const EDGE_BAND: f32 = 0.2;

/// The named positions of a mug in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionKey {
    /// Within [`CENTRE_BAND`] of the middle on both axes.
    Center,
    /// Near the left edge only.
    LeftEdge,
    /// Near the right edge only.
    RightEdge,
    /// Near the top edge only.
    TopEdge,
    /// Near the bottom edge only.
    BottomEdge,
    /// Near the left and top edges.
    TopLeft,
    /// Near the right and top edges.
    TopRight,
    /// Near the left and bottom edges.
    BottomLeft,
    /// Near the right and bottom edges.
    BottomRight,
}

impl PositionKey {
    /// Every position, centre first.
    pub const ALL: [PositionKey; 9] = [
        PositionKey::Center,
        PositionKey::LeftEdge,
        PositionKey::RightEdge,
        PositionKey::TopEdge,
        PositionKey::BottomEdge,
        PositionKey::TopLeft,
        PositionKey::TopRight,
        PositionKey::BottomLeft,
        PositionKey::BottomRight,
    ];

    /// The key as written in JSON and rules (`center`, `left_edge`, `top_left`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            PositionKey::Center => "center",
            PositionKey::LeftEdge => "left_edge",
            PositionKey::RightEdge => "right_edge",
            PositionKey::TopEdge => "top_edge",
            PositionKey::BottomEdge => "bottom_edge",
            PositionKey::TopLeft => "top_left",
            PositionKey::TopRight => "top_right",
            PositionKey::BottomLeft => "bottom_left",
            PositionKey::BottomRight => "bottom_right",
        }
    }

    /// How much of the detection confidence the position keeps: 0.95 for the centre, 0.85 at an
    /// edge, 0.8 in a corner.
    pub const fn confidence_factor(self) -> f32 {
        match self {
            PositionKey::Center => 0.95,
            PositionKey::LeftEdge
            | PositionKey::RightEdge
            | PositionKey::TopEdge
            | PositionKey::BottomEdge => 0.85,
            _ => 0.8,
        }
    }

    /// The position of a point at relative coordinates (0..1 from the left and from the top):
    /// centre when both are strictly within [`CENTRE_BAND`] of 0.5; otherwise an axis at most
    /// [`EDGE_BAND`] from 0 or 1 names an edge, two such axes a corner. A point between the bands
    /// on one axis and at an edge on the other is at that edge.
    pub fn classify(rel_x: f32, rel_y: f32) -> PositionKey {
        if (rel_x - 0.5).abs() < CENTRE_BAND && (rel_y - 0.5).abs() < CENTRE_BAND {
            return PositionKey::Center;
        }
        let left = rel_x <= EDGE_BAND;
        let right = rel_x >= 1.0 - EDGE_BAND;
        let top = rel_y <= EDGE_BAND;
        let bottom = rel_y >= 1.0 - EDGE_BAND;
        match (left, right, top, bottom) {
            (true, _, true, _) => PositionKey::TopLeft,
            (true, _, _, true) => PositionKey::BottomLeft,
            (_, true, true, _) => PositionKey::TopRight,
            (_, true, _, true) => PositionKey::BottomRight,
            (true, _, _, _) => PositionKey::LeftEdge,
            (_, true, _, _) => PositionKey::RightEdge,
            (_, _, true, _) => PositionKey::TopEdge,
            (_, _, _, true) => PositionKey::BottomEdge,
            _ => PositionKey::Center,
        }
    }
}

impl std::fmt::Display for PositionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 2-D point or offset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal, growing to the right.
    pub x: f32,
    /// Vertical, growing downwards.
    pub y: f32,
}

/// Where one mug stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Positioning {
    /// Index of the mug in the analysis's detections.
    pub detection_index: usize,
    /// The named position.
    pub position_key: PositionKey,
    /// Detection confidence times the position's factor.
    pub confidence: f32,
    /// The box centre, in image pixels.
    pub center: Point,
    /// The box centre relative to the image size (0..1 on each axis).
    pub relative: Point,
    /// The point offsets are measured from: the reference point, or the image centre.
    pub reference: Point,
    /// Box centre minus reference, in pixels.
    pub offset_px: Point,
    /// Euclidean length of `offset_px`.
    pub distance_px: f32,
    /// `offset_px` times the calibration, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_mm: Option<Point>,
    /// `distance_px` times the calibration, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_mm: Option<f32>,
}

/// The frame and scale positions are measured in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Offsets are measured from here; the image centre when `None`.
    pub reference_point: Option<Point>,
    /// Millimetres per pixel, for offsets in millimetres.
    pub mm_per_pixel: Option<f32>,
}

/// Positions the mug with box `bbox` (image pixels) and detection `confidence` in `frame`.
pub fn position(
    detection_index: usize,
    bbox: &BoxXyxy,
    confidence: f32,
    frame: &Frame,
) -> Positioning {
    let (cx, cy) = bbox.centre();
    let (w, h) = (frame.width.max(1) as f32, frame.height.max(1) as f32);
    let relative = Point {
        x: cx / w,
        y: cy / h,
    };
    let key = PositionKey::classify(relative.x, relative.y);
    let reference = frame.reference_point.unwrap_or(Point {
        x: w / 2.0,
        y: h / 2.0,
    });
    let offset_px = Point {
        x: cx - reference.x,
        y: cy - reference.y,
    };
    let distance_px = offset_px.x.hypot(offset_px.y);
    let scale = frame.mm_per_pixel.filter(|mm| mm.is_finite() && *mm > 0.0);
    Positioning {
        detection_index,
        position_key: key,
        confidence: confidence * key.confidence_factor(),
        center: Point { x: cx, y: cy },
        relative,
        reference,
        offset_px,
        distance_px,
        offset_mm: scale.map(|mm| Point {
            x: offset_px.x * mm,
            y: offset_px.y * mm,
        }),
        distance_mm: scale.map(|mm| distance_px * mm),
    }
}
