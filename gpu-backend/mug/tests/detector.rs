//! The Mug Positioning kernel from the outside: decode limits, letterbox, NMS, positioning,
//! mAP, rules, the natural-language parser and the shipped detector on known scenes.

use mug::language::{LanguageError, parse_rule};
use mug::metrics::{ImageResult, average_precision};
use mug::positioning::{Frame, Point, PositionKey, position};
use mug::postprocess::{
    BoxXyxy, RawDetection, Thresholds, detections_from_predictions, non_max_suppression,
};
use mug::preprocess::{Letterbox, decode_image, letterbox_pixels};
use mug::rules::{StoredRule, Verdict, evaluate, evaluate_analysis, mug_facts};
use mug::synthetic::{SceneSpec, desk_scene, random_scene, render};
use mug::{
    Analysis, AnalyzeOptions, BoundingBox, Detection, Detector, MugError, Upload, positioning,
};
use serde_json::json;
use shared::body::rules::{ActionKind, ConditionOperator, RuleDefinition};
use shared::upload::UploadError;

fn png_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn bx(x1: f32, y1: f32, x2: f32, y2: f32) -> BoxXyxy {
    BoxXyxy { x1, y1, x2, y2 }
}

// ---- decoding ----

/// A PNG signature and IHDR that claim 50 000 × 50 000 pixels, and nothing else.
fn bomb_png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&50_000u32.to_be_bytes());
    bytes.extend_from_slice(&50_000u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes
}

#[test]
fn a_header_claiming_50000_pixels_a_side_is_refused_before_decoding() {
    match decode_image(&bomb_png(), Some("image/png")) {
        Err(MugError::Upload(UploadError::DimensionsTooLarge { width, height })) => {
            assert_eq!((width, height), (50_000, 50_000));
        }
        other => panic!("expected DimensionsTooLarge, got {other:?}"),
    }
    let detector_error = Detector::shipped()
        .unwrap()
        .analyze(&bomb_png(), None, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(matches!(
        detector_error,
        MugError::Upload(UploadError::DimensionsTooLarge { .. })
    ));
}

#[test]
fn bad_images_are_typed_errors() {
    assert!(matches!(
        decode_image(b"GIF89a....", None),
        Err(MugError::Upload(UploadError::NotAnImage))
    ));
    let mut truncated = png_bytes(&image::RgbImage::new(40, 30));
    truncated.truncate(60);
    assert!(matches!(
        decode_image(&truncated, None),
        Err(MugError::Decode(_))
    ));
    assert!(matches!(
        decode_image(&png_bytes(&image::RgbImage::new(4, 4)), Some("image/jpeg")),
        Err(MugError::Upload(UploadError::TypeMismatch { .. }))
    ));
    let good = decode_image(&png_bytes(&image::RgbImage::new(40, 30)), Some("image/png")).unwrap();
    assert_eq!(good.dimensions(), (40, 30));
}

#[test]
fn letterbox_scales_the_long_side_and_pads_to_multiples_of_32() {
    let plan = Letterbox::plan(640, 480, 640);
    assert_eq!((plan.input_width, plan.input_height), (640, 480));
    assert_eq!((plan.pad_x, plan.pad_y), (0.0, 0.0));
    let plan = Letterbox::plan(1000, 500, 640);
    assert_eq!((plan.input_width, plan.input_height), (640, 320));
    assert_eq!(plan.scale, 0.64);
    let plan = Letterbox::plan(300, 500, 256);
    assert_eq!((plan.content_width, plan.content_height), (154, 256));
    assert_eq!((plan.input_width, plan.input_height), (160, 256));
    assert_eq!(plan.pad_x, 3.0);
    let (x, y) = plan.to_image(plan.to_input(120.0, 40.0).0, plan.to_input(120.0, 40.0).1);
    assert!((x - 120.0).abs() < 1e-3 && (y - 40.0).abs() < 1e-3);
    let (pixels, plan) = letterbox_pixels(
        &image::RgbImage::from_pixel(10, 40, image::Rgb([255, 0, 0])),
        64,
    );
    assert_eq!(pixels.len(), 3 * plan.input_width * plan.input_height);
    assert_eq!((plan.input_width, plan.input_height), (32, 64));
    assert_eq!((plan.content_width, plan.pad_x), (16, 8.0));
    // Column 0 is border (grey), column 16 is image (red).
    assert_eq!(pixels[0], 114.0 / 255.0);
    assert_eq!(pixels[16], 1.0);
    assert_eq!(pixels[32 * 64 + 16], 0.0);
}

// ---- decoding predictions ----

#[test]
fn decoding_keeps_the_best_class_above_threshold_and_suppresses_per_class() {
    // 4 anchors, 2 classes: rows cx, cy, w, h, class 0, class 1.
    let pred = vec![
        10.0, 11.0, 50.0, 80.0, // cx
        10.0, 10.0, 50.0, 80.0, // cy
        8.0, 8.0, 10.0, 10.0, // w
        8.0, 8.0, 10.0, 10.0, // h
        0.9, 0.8, 0.1, 0.2, // class 0
        0.1, 0.1, 0.7, 0.24, // class 1
    ];
    let found = detections_from_predictions(&pred, 2, 4, &Thresholds::default(), None);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].class, found[0].score), (0, 0.9));
    assert_eq!(found[0].bbox, bx(6.0, 6.0, 14.0, 14.0));
    assert_eq!((found[1].class, found[1].score), (1, 0.7));
    // Only class 0 allowed: anchor 2 falls to 0.1 and is dropped.
    let only = detections_from_predictions(&pred, 2, 4, &Thresholds::default(), Some(&[0]));
    assert_eq!(only.len(), 1);
    assert!(
        detections_from_predictions(&pred[..10], 2, 4, &Thresholds::default(), None).is_empty()
    );
}

#[test]
fn nms_is_class_aware() {
    let a = RawDetection {
        bbox: bx(0.0, 0.0, 10.0, 10.0),
        score: 0.9,
        class: 0,
    };
    let b = RawDetection {
        bbox: bx(1.0, 0.0, 11.0, 10.0),
        score: 0.8,
        class: 0,
    };
    let c = RawDetection {
        bbox: bx(1.0, 0.0, 11.0, 10.0),
        score: 0.7,
        class: 1,
    };
    let d = RawDetection {
        bbox: bx(20.0, 20.0, 30.0, 30.0),
        score: 0.6,
        class: 0,
    };
    let kept = non_max_suppression(vec![d, c, b, a], 0.45);
    assert_eq!(kept, vec![a, c, d]);
    assert!((a.bbox.iou(&b.bbox) - 90.0 / 110.0).abs() < 1e-6);
    let kept_loose = non_max_suppression(vec![a, b], 0.9);
    assert_eq!(kept_loose.len(), 2);
}

// ---- positioning ----

#[test]
fn frame_positions_follow_the_seed_bands() {
    let cases = [
        ((0.5, 0.5), PositionKey::Center),
        ((0.21, 0.79), PositionKey::Center),
        ((0.2, 0.5), PositionKey::LeftEdge),
        ((0.85, 0.5), PositionKey::RightEdge),
        ((0.5, 0.1), PositionKey::TopEdge),
        ((0.5, 0.95), PositionKey::BottomEdge),
        ((0.1, 0.1), PositionKey::TopLeft),
        ((0.9, 0.1), PositionKey::TopRight),
        ((0.1, 0.9), PositionKey::BottomLeft),
        ((0.9, 0.9), PositionKey::BottomRight),
    ];
    for ((x, y), key) in cases {
        assert_eq!(PositionKey::classify(x, y), key, "{x},{y}");
    }
    assert_eq!(PositionKey::Center.confidence_factor(), 0.95);
    assert_eq!(PositionKey::TopEdge.confidence_factor(), 0.85);
    assert_eq!(PositionKey::BottomRight.confidence_factor(), 0.8);
    assert_eq!(
        serde_json::to_value(PositionKey::TopLeft).unwrap(),
        json!("top_left")
    );
}

#[test]
fn offsets_are_from_the_centre_or_reference_in_pixels_and_millimetres() {
    let frame = Frame {
        width: 640,
        height: 480,
        reference_point: None,
        mm_per_pixel: Some(0.5),
    };
    let p = position(0, &bx(400.0, 200.0, 440.0, 280.0), 0.8, &frame);
    assert_eq!(p.position_key, PositionKey::Center);
    assert_eq!(p.offset_px, Point { x: 100.0, y: 0.0 });
    assert_eq!(p.offset_mm, Some(Point { x: 50.0, y: 0.0 }));
    assert_eq!(p.distance_mm, Some(50.0));
    assert!((p.confidence - 0.76).abs() < 1e-6);
    let frame = Frame {
        reference_point: Some(Point { x: 20.0, y: 40.0 }),
        mm_per_pixel: None,
        ..frame
    };
    let p = position(3, &bx(0.0, 0.0, 40.0, 40.0), 1.0, &frame);
    assert_eq!(p.position_key, PositionKey::TopLeft);
    assert_eq!(p.offset_px, Point { x: 0.0, y: -20.0 });
    assert_eq!(p.offset_mm, None);
    assert_eq!(p.detection_index, 3);
    assert!((p.confidence - 0.8).abs() < 1e-6);
}

// ---- metrics ----

#[test]
fn average_precision_counts_duplicates_and_misses() {
    let truth = vec![
        (bx(0.0, 0.0, 10.0, 10.0), 0),
        (bx(20.0, 20.0, 30.0, 30.0), 0),
    ];
    let det = |b: BoxXyxy, s: f32| RawDetection {
        bbox: b,
        score: s,
        class: 0,
    };
    let perfect = ImageResult {
        truth: truth.clone(),
        predictions: vec![det(truth[0].0, 0.9), det(truth[1].0, 0.8)],
    };
    assert_eq!(average_precision(&[perfect], 0, 0.5), 1.0);
    // A false positive ranked first, then both hits: precision 1/2 at recall 0.5 and 2/3 at 1.0,
    // envelope 2/3 everywhere.
    let noisy = ImageResult {
        truth: truth.clone(),
        predictions: vec![
            det(bx(50.0, 50.0, 60.0, 60.0), 0.95),
            det(truth[0].0, 0.9),
            det(truth[1].0, 0.8),
        ],
    };
    assert!((average_precision(&[noisy], 0, 0.5) - 2.0 / 3.0).abs() < 1e-6);
    // A duplicate of the same mug is a false positive; the second mug is missed: AP 0.5.
    let duplicate = ImageResult {
        truth,
        predictions: vec![
            det(bx(0.0, 0.0, 10.0, 10.0), 0.9),
            det(bx(0.0, 0.0, 10.0, 11.0), 0.8),
        ],
    };
    assert_eq!(average_precision(&[duplicate], 0, 0.5), 0.5);
    assert_eq!(average_precision(&[ImageResult::default()], 0, 0.5), 1.0);
}

// ---- synthetic scenes ----

#[test]
fn scenes_are_deterministic_and_boxes_cover_the_mugs() {
    let a = random_scene(42, 256);
    let b = random_scene(42, 256);
    assert_eq!(a.image.as_raw(), b.image.as_raw());
    assert_eq!(a.mugs, b.mugs);
    assert_ne!(random_scene(43, 256).image.as_raw(), a.image.as_raw());
    let mut counts = [0usize; 5];
    for seed in 0..200 {
        let scene = random_scene(seed, 192);
        counts[scene.mugs.len()] += 1;
        for m in &scene.mugs {
            assert!(
                m.x1 >= 0.0 && m.y1 >= 0.0 && m.x2 <= 192.0 && m.y2 <= 192.0,
                "{seed}: {m:?}"
            );
            assert!(m.x2 - m.x1 >= 4.0 && m.y2 - m.y1 >= 4.0, "{seed}: {m:?}");
        }
    }
    assert!(counts.iter().all(|&c| c > 5), "{counts:?}");
}

fn known_scene(mugs: &[(f32, f32, f32)]) -> SceneSpec {
    desk_scene(320, 240, mugs)
}

#[test]
fn the_shipped_detector_finds_and_positions_known_mugs() {
    let detector = Detector::shipped().unwrap();
    assert_eq!(detector.classes(), ["mug"]);
    // A centred mug, one at the left edge, one at the bottom-right.
    let spec = known_scene(&[
        (160.0, 150.0, 60.0),
        (40.0, 130.0, 50.0),
        (285.0, 228.0, 40.0),
    ]);
    let scene = render(&spec);
    let bytes = png_bytes(&scene.image);
    let options = AnalyzeOptions {
        mm_per_pixel: Some(0.5),
        ..AnalyzeOptions::default()
    };
    let analysis = detector
        .analyze(&bytes, Some("image/png"), &options)
        .unwrap();
    assert_eq!(analysis.mug_count, 3, "{analysis:#?}");
    let mut keys: Vec<_> = analysis
        .positioning
        .iter()
        .map(|p| p.position_key)
        .collect();
    keys.sort_by_key(|k| k.as_str());
    assert_eq!(
        keys,
        [
            PositionKey::BottomRight,
            PositionKey::Center,
            PositionKey::LeftEdge
        ]
    );
    for truth in &scene.mugs {
        let best = analysis
            .detections
            .iter()
            .map(|d| d.bbox.to_xyxy().iou(truth))
            .fold(0.0f32, f32::max);
        assert!(best > 0.6, "mug {truth:?} found with IoU {best}");
    }
    let centre = analysis
        .positioning
        .iter()
        .find(|p| p.position_key == PositionKey::Center)
        .unwrap();
    assert!(centre.offset_mm.unwrap().x.abs() < 10.0, "{centre:?}");

    let empty = render(&known_scene(&[]));
    let none = detector
        .analyze_image(&empty.image, &AnalyzeOptions::default())
        .unwrap();
    assert_eq!(none.mug_count, 0, "{none:#?}");
    assert!(none.model_version.starts_with("mug-detector-p-"));
}

// ---- rules ----

fn rule(json: serde_json::Value) -> StoredRule {
    let rule: RuleDefinition = serde_json::from_value(json).unwrap();
    StoredRule {
        id: rule.name.replace(' ', "-"),
        rule,
    }
}

fn analysis_with(boxes: &[BoxXyxy]) -> Analysis {
    let frame = Frame {
        width: 640,
        height: 480,
        reference_point: None,
        mm_per_pixel: Some(1.0),
    };
    Analysis {
        detections: boxes
            .iter()
            .map(|b| Detection {
                bbox: BoundingBox {
                    top_left: Point { x: b.x1, y: b.y1 },
                    bottom_right: Point { x: b.x2, y: b.y2 },
                    confidence: 0.9,
                },
                class_name: "mug".to_owned(),
            })
            .collect(),
        positioning: boxes
            .iter()
            .enumerate()
            .map(|(i, b)| positioning::position(i, b, 0.9, &frame))
            .collect(),
        mug_count: boxes.len(),
        processing_time_ms: 1.0,
        model_version: "test".to_owned(),
    }
}

#[test]
fn rules_fire_for_every_matching_mug_and_only_then() {
    let rules = [
        rule(
            json!({"name": "centred", "conditions": [{"field": "positioning.position_key", "operator": "==", "value": "center"}],
            "actions": [{"action": "alert", "message": "centred"}]}),
        ),
        rule(
            json!({"name": "too many", "priority": 900, "conditions": [{"field": "mug_count", "operator": ">", "value": 1}],
            "actions": [{"action": "reject", "message": "one mug only"}]}),
        ),
        rule(
            json!({"name": "near centre", "conditions": [{"field": "offset_mm.x", "operator": "abs<", "value": 50}],
            "actions": [{"action": "adjust", "parameters": {"target": "center"}}]}),
        ),
        rule(
            json!({"name": "off", "enabled": false, "conditions": [{"field": "mug_count", "operator": ">=", "value": 0}],
            "actions": [{"action": "reject"}]}),
        ),
    ];
    // One centred mug 20 px right of centre, one at the left edge.
    let two = analysis_with(&[bx(320.0, 200.0, 360.0, 280.0), bx(10.0, 200.0, 60.0, 280.0)]);
    let outcome = evaluate_analysis(&rules, &two);
    let fired: Vec<(&str, Option<usize>)> = outcome
        .matches
        .iter()
        .map(|m| (m.rule_id.as_str(), m.mug_index))
        .collect();
    assert_eq!(
        fired,
        [
            ("too-many", None),
            ("centred", Some(0)),
            ("near-centre", Some(0))
        ]
    );
    assert_eq!(outcome.verdict, Verdict::Reject);
    assert_eq!(outcome.messages, ["one mug only", "centred"]);
    assert_eq!(outcome.adjustments.len(), 1);
    assert_eq!(outcome.skipped, ["off"]);

    // Only the left-edge mug: nothing fires.
    let left = analysis_with(&[bx(10.0, 200.0, 60.0, 280.0)]);
    let outcome = evaluate_analysis(&rules, &left);
    assert!(outcome.matches.is_empty(), "{outcome:?}");
    assert_eq!(outcome.verdict, Verdict::Accept);

    // No mug: a mug_count rule sees 0; a position rule has nothing to read.
    let facts = mug_facts(&analysis_with(&[]));
    assert_eq!(facts, [json!({"mug_count": 0})]);
    let none_rule = rule(
        json!({"name": "none", "conditions": [{"field": "mug_count", "operator": "==", "value": 0}], "actions": [{"action": "alert", "message": "no mug"}]}),
    );
    let outcome = evaluate(&[none_rule, rules[0].clone()], &facts);
    assert_eq!(outcome.matches.len(), 1);
    assert_eq!(outcome.verdict, Verdict::Alert);
}

#[test]
fn operators_compare_as_documented() {
    use mug::rules::condition_holds;
    use shared::body::rules::RuleCondition;
    let facts = json!({"a": {"b": -60.5}, "key": "LEFT_edge", "tags": ["x", "y"], "n": 2});
    let holds = |field: &str, operator: ConditionOperator, value: serde_json::Value| {
        condition_holds(
            &RuleCondition {
                field: field.to_owned(),
                operator,
                value,
            },
            &facts,
        )
    };
    assert!(holds("a.b", ConditionOperator::AbsGt, json!(60)));
    assert!(!holds("a.b", ConditionOperator::AbsLt, json!(60)));
    assert!(holds("a.b", ConditionOperator::Lt, json!(-60)));
    assert!(holds("n", ConditionOperator::Eq, json!(2.0)));
    assert!(holds("key", ConditionOperator::Eq, json!("left_edge")));
    assert!(holds(
        "key",
        ConditionOperator::In,
        json!(["center", "left_edge"])
    ));
    assert!(holds("key", ConditionOperator::NotIn, json!(["center"])));
    assert!(holds("tags", ConditionOperator::Contains, json!("y")));
    assert!(holds("key", ConditionOperator::Contains, json!("edge")));
    assert!(!holds("key", ConditionOperator::Gt, json!(1)));
    assert!(!holds("missing", ConditionOperator::Eq, json!(1)));
    assert!(holds("missing", ConditionOperator::Ne, json!(1)));
    assert!(!holds("missing.deeper", ConditionOperator::Lt, json!(1)));
}

// ---- natural language ----

#[test]
fn parser_reads_the_seed_sentences() {
    let left = parse_rule("Alert if the mug is near the left edge", None).unwrap();
    assert_eq!(left.rule.actions[0].action, ActionKind::Alert);
    assert_eq!(left.rule.conditions.len(), 1);
    assert_eq!(left.rule.conditions[0].field, "positioning.position_key");
    assert_eq!(left.rule.conditions[0].operator, ConditionOperator::In);
    assert_eq!(
        left.rule.conditions[0].value,
        json!(["left_edge", "top_left", "bottom_left"])
    );
    assert!(left.warnings.is_empty());
    assert_eq!(left.confidence, 0.95);

    let many = parse_rule("Reject when there are more than two mugs.", Some("max two")).unwrap();
    assert_eq!(many.rule.name, "max two");
    assert_eq!(many.rule.actions[0].action, ActionKind::Reject);
    assert_eq!(many.rule.conditions[0].field, "mug_count");
    assert_eq!(many.rule.conditions[0].operator, ConditionOperator::Gt);
    assert_eq!(many.rule.conditions[0].value, json!(2));

    let keep = parse_rule("keep the mug within 50 mm of the centre", None).unwrap();
    assert_eq!(keep.rule.actions[0].action, ActionKind::Adjust);
    assert_eq!(keep.rule.conditions[0].field, "distance_mm");
    assert_eq!(keep.rule.conditions[0].operator, ConditionOperator::Gt);
    assert_eq!(keep.rule.conditions[0].value, json!(50));
    let parameters = keep.rule.actions[0].parameters.as_ref().unwrap();
    assert_eq!(parameters["max_distance_mm"], json!(50));
    assert_eq!(parameters["target"], json!("center"));
    assert!(
        keep.interpretation.contains("more than 50 mm"),
        "{}",
        keep.interpretation
    );
}

#[test]
fn parser_handles_units_directions_corners_and_defaults() {
    let cm = parse_rule(
        "warn if the mug is more than 3 cm to the left of the center",
        None,
    )
    .unwrap();
    assert_eq!(cm.rule.conditions[0].field, "offset_mm.x");
    assert_eq!(cm.rule.conditions[0].operator, ConditionOperator::Lt);
    assert_eq!(cm.rule.conditions[0].value, json!(-30));

    let px = parse_rule("reject if the mug is horizontally more than 20px off", None).unwrap();
    assert_eq!(px.rule.conditions[0].field, "offset_px.x");
    assert_eq!(px.rule.conditions[0].operator, ConditionOperator::AbsGt);

    let corner = parse_rule("urgent: reject a mug in the upper right corner", None).unwrap();
    assert_eq!(corner.rule.conditions[0].value, json!("top_right"));
    assert_eq!(corner.rule.priority, 500);

    let none = parse_rule("alert when there is no mug", None).unwrap();
    assert_eq!(none.rule.conditions[0].field, "mug_count");
    assert_eq!(none.rule.conditions[0].operator, ConditionOperator::Eq);
    assert_eq!(none.rule.conditions[0].value, json!(0));

    let off = parse_rule("the mug is not in the middle", None).unwrap();
    assert_eq!(off.rule.conditions[0].operator, ConditionOperator::Ne);
    assert_eq!(off.rule.actions[0].action, ActionKind::Alert);
    assert_eq!(off.warnings.len(), 1);
    assert!((off.confidence - 0.7).abs() < 1e-6);

    let unitless = parse_rule("alert if the mug is further than 40 from the centre", None).unwrap();
    assert_eq!(unitless.rule.conditions[0].field, "distance_mm");
    assert!(unitless.warnings.iter().any(|w| w.contains("millimetres")));

    let three = parse_rule("reject if 3 or more cups", None).unwrap();
    assert_eq!(three.rule.conditions[0].operator, ConditionOperator::Ge);
    assert_eq!(three.rule.conditions[0].value, json!(3));

    assert_eq!(parse_rule("  ...  ", None), Err(LanguageError::Empty));
    assert!(matches!(
        parse_rule("make me a sandwich", None),
        Err(LanguageError::NotUnderstood(_))
    ));
    assert_eq!(
        parse_rule(&"a".repeat(1001), None),
        Err(LanguageError::TooLong)
    );
}

#[test]
fn drafted_rules_pass_the_api_validation_and_evaluate() {
    use shared::body::Validate;
    for text in [
        "alert if the mug is near the left edge",
        "reject when there are more than two mugs",
        "keep the mug within 50 mm of the centre",
        "flag the mug if confidence is below 0.5",
    ] {
        let parsed = parse_rule(text, None).unwrap();
        parsed
            .rule
            .validate()
            .unwrap_or_else(|p| panic!("{text}: {p:?}"));
    }
    let keep = parse_rule("keep the mug within 50 mm of the centre", None).unwrap();
    let stored = [StoredRule {
        id: "keep".to_owned(),
        rule: keep.rule,
    }];
    // 100 px right of centre at 1 mm/px: outside 50 mm, the adjust fires; 20 px: it does not.
    let far = evaluate_analysis(&stored, &analysis_with(&[bx(400.0, 200.0, 440.0, 280.0)]));
    assert_eq!(far.adjustments.len(), 1);
    let near = evaluate_analysis(&stored, &analysis_with(&[bx(320.0, 200.0, 360.0, 280.0)]));
    assert!(near.matches.is_empty());
}

// ---- loading other weights ----

#[test]
fn coco_shaped_yolov8n_weights_load_with_coco_names() {
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};
    use mug::model::{Mode, ModelShape, Variant, YoloV8};
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let shape = ModelShape {
        multiples: Variant::N.multiples(),
        classes: 80,
    };
    YoloV8::load(vb, shape, Mode::Train).unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!("h200-mug-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("yolov8n.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let detector = Detector::from_file(&path).unwrap();
    assert_eq!(detector.classes().len(), 80);
    assert_eq!(detector.classes()[41], "cup");
    assert_eq!(detector.input_size(), 640);
    assert!(
        detector.version().starts_with("yolov8-n-"),
        "{}",
        detector.version()
    );
    let image = image::RgbImage::from_pixel(96, 64, image::Rgb([200, 200, 200]));
    let options = AnalyzeOptions {
        input_size: Some(64),
        ..AnalyzeOptions::default()
    };
    let analysis = detector.analyze_image(&image, &options).unwrap();
    let allowed = ["cup", "wine glass", "bottle", "bowl"];
    assert!(
        analysis
            .detections
            .iter()
            .all(|d| allowed.contains(&d.class_name.as_str()))
    );

    let mut partial = tensors;
    partial.remove("net.b4.0.conv.weight");
    let broken = dir.join("broken.safetensors");
    candle_core::safetensors::save(&partial, &broken).unwrap();
    assert!(matches!(
        Detector::from_file(&broken),
        Err(MugError::UnsupportedModel(_))
    ));
    assert!(matches!(
        Detector::from_safetensors(b"not a safetensors file", &Device::Cpu),
        Err(MugError::UnsupportedModel(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example image of the README and the end-to-end tests, `tests/fixtures/desk-two-mugs.png`.
const EXAMPLE_IMAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/desk-two-mugs.png"
);

/// The example image's scene: a centred mug and one at the left edge.
fn example_scene() -> SceneSpec {
    desk_scene(320, 240, &[(160.0, 150.0, 60.0), (40.0, 130.0, 50.0)])
}

/// The committed example is exactly the documented scene (rewrite it with
/// `H200_WRITE_EXAMPLE_IMAGE=1`), and the shipped model finds both mugs where they stand.
#[test]
fn the_example_image_is_the_documented_scene() {
    let scene = render(&example_scene());
    if std::env::var_os("H200_WRITE_EXAMPLE_IMAGE").is_some() {
        std::fs::write(EXAMPLE_IMAGE, png_bytes(&scene.image)).unwrap();
    }
    let bytes = std::fs::read(EXAMPLE_IMAGE).unwrap();
    let committed = decode_image(&bytes, Some("image/png")).unwrap();
    assert_eq!(committed, scene.image);
    let analysis = Detector::shipped()
        .unwrap()
        .analyze(&bytes, Some("image/png"), &AnalyzeOptions::default())
        .unwrap();
    let mut keys: Vec<_> = analysis
        .positioning
        .iter()
        .map(|p| p.position_key)
        .collect();
    keys.sort_by_key(|k| k.as_str());
    assert_eq!(
        keys,
        [PositionKey::Center, PositionKey::LeftEdge],
        "{analysis:#?}"
    );
}

/// A batch gives each upload what analysing it alone gives: same detections and positions,
/// whatever the other images' shapes; a broken upload fails alone.
#[test]
fn batched_analysis_matches_one_by_one() {
    let detector = Detector::shipped().unwrap();
    let images: Vec<Vec<u8>> = vec![
        png_bytes(&render(&known_scene(&[(160.0, 150.0, 60.0), (285.0, 228.0, 40.0)])).image),
        std::fs::read(EXAMPLE_IMAGE).unwrap(),
        png_bytes(&random_scene(11, 640).image),
        std::fs::read(EXAMPLE_IMAGE).unwrap()[..4000].to_vec(),
        png_bytes(&render(&desk_scene(240, 320, &[(120.0, 250.0, 70.0)])).image),
        png_bytes(&render(&known_scene(&[])).image),
    ];
    let calibrated = AnalyzeOptions {
        mm_per_pixel: Some(0.5),
        ..AnalyzeOptions::default()
    };
    let plain = AnalyzeOptions::default();
    let uploads: Vec<Upload<'_>> = images
        .iter()
        .enumerate()
        .map(|(i, bytes)| Upload {
            bytes,
            declared_type: Some("image/png"),
            options: if i % 2 == 0 { &calibrated } else { &plain },
        })
        .collect();
    let batched = detector.analyze_batch(&uploads);
    assert_eq!(batched.len(), images.len());
    for (upload, batched) in uploads.iter().zip(&batched) {
        let alone = detector.analyze(upload.bytes, upload.declared_type, upload.options);
        match (alone, batched) {
            (Ok(alone), Ok(batched)) => {
                assert_eq!(alone.mug_count, batched.mug_count);
                for (a, b) in alone.detections.iter().zip(&batched.detections) {
                    assert!(
                        a.bbox.to_xyxy().iou(&b.bbox.to_xyxy()) > 0.999,
                        "{a:?} {b:?}"
                    );
                    assert!((a.bbox.confidence - b.bbox.confidence).abs() < 1e-4);
                }
                for (a, b) in alone.positioning.iter().zip(&batched.positioning) {
                    assert_eq!(a.position_key, b.position_key);
                    assert_eq!(a.offset_mm.is_some(), b.offset_mm.is_some());
                }
            }
            (Err(_), Err(e)) => assert!(matches!(e, MugError::Decode(_)), "{e:?}"),
            (alone, batched) => panic!("alone {alone:?}, batched {batched:?}"),
        }
    }
    assert!(batched[3].is_err());
    assert_eq!(batched[0].as_ref().unwrap().mug_count, 2);
    assert_eq!(batched[4].as_ref().unwrap().mug_count, 1);
    assert_eq!(batched[5].as_ref().unwrap().mug_count, 0);
}

/// The `analysis` kernel runs a batch of jobs: each gets its own result, rules and refusal.
#[test]
fn the_analysis_kernel_answers_each_job_of_a_batch() {
    use base64::Engine;
    use kernel::{ClaimedJob, Kernel, KernelError};
    use mug::kernel::AnalysisKernel;

    let kernel = AnalysisKernel::with_detector(Detector::shipped().unwrap());
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let example = std::fs::read(EXAMPLE_IMAGE).unwrap();
    let job = |payload: serde_json::Value| ClaimedJob {
        id: "j".into(),
        kind: "analysis".into(),
        owner: None,
        partition_key: None,
        payload,
        attempt: 1,
        partition_state: None,
    };
    let left_edge_rule = json!({
        "id": "r1",
        "rule": {
            "name": "left",
            "conditions": [{ "field": "position_key", "operator": "==", "value": "left_edge" }],
            "actions": [{ "action": "reject", "message": "too far left" }],
        },
    });
    let jobs = [
        job(json!({
            "image_base64": encode(&example),
            "declared_type": "image/png",
            "options": { "calibration_mm_per_pixel": 0.5 },
            "rules": [left_edge_rule],
        })),
        job(json!({ "image_base64": "***", "options": {} })),
        job(json!({ "image_base64": encode(&example[..4000]), "options": {} })),
        job(json!({ "image_base64": encode(&example), "options": { "include_feedback": false } })),
    ];
    let results = kernel.run_batch(&jobs);
    assert_eq!(results.len(), 4);
    let first = &results[0].as_ref().unwrap().result;
    assert_eq!(first["mug_count"], 2);
    assert_eq!(first["verdict"], "reject");
    assert_eq!(first["rule_violations"][0]["rule_id"], "r1");
    assert!(first["feedback"].as_array().unwrap().len() >= 3);
    assert!(matches!(results[1], Err(KernelError::Invalid(_))));
    let refused = &results[2].as_ref().unwrap().result;
    assert_eq!(refused["error"]["code"], "INVALID_IMAGE_FORMAT");
    let quiet = &results[3].as_ref().unwrap().result;
    assert_eq!(quiet["mug_count"], 2);
    assert!(quiet["feedback"].is_null());
    assert_eq!(quiet["verdict"], "accept");
}
