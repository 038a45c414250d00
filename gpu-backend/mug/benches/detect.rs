//! Detection throughput on CPU: images per second through the shipped detector with the input
//! letterboxed to 640 (and to the model's own 256 for comparison), on a synthetic 640×480 scene.
//! Run with `cargo bench -p h200-mug --bench detect`; `DETECT_BENCH_ITERS` sets the
//! number of timed images (default 20).

use std::time::Instant;

use mug::postprocess::Thresholds;
use mug::synthetic::random_scene;
use mug::{AnalyzeOptions, Detector, Upload};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::var("DETECT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(20);
    let detector = Detector::shipped()?;
    let scene = random_scene(7, 640);
    println!(
        "detector {} on a {}x{} scene, {} timed images, {} candle threads",
        detector.version(),
        scene.image.width(),
        scene.image.height(),
        iterations,
        candle_core::utils::get_num_threads()
    );
    for size in [640, 256] {
        let options = AnalyzeOptions {
            thresholds: Thresholds::default(),
            input_size: Some(size),
            ..AnalyzeOptions::default()
        };
        detector.analyze_image(&scene.image, &options)?;
        let started = Instant::now();
        let mut mugs = 0;
        for _ in 0..iterations {
            mugs += detector.analyze_image(&scene.image, &options)?.mug_count;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "input {size}: {:.2} images/s ({:.1} ms/image, {} mugs per image)",
            iterations as f64 / seconds,
            seconds * 1000.0 / iterations as f64,
            mugs / iterations
        );
    }
    // Batches: 8 PNG uploads of the same shape, one by one and as one batch (decode included),
    // measured in the same run.
    let mut png = std::io::Cursor::new(Vec::new());
    scene.image.write_to(&mut png, image::ImageFormat::Png)?;
    let png = png.into_inner();
    let options = AnalyzeOptions {
        input_size: Some(640),
        ..AnalyzeOptions::default()
    };
    let uploads: Vec<Upload<'_>> = (0..8)
        .map(|_| Upload {
            bytes: &png,
            declared_type: Some("image/png"),
            options: &options,
        })
        .collect();
    let rounds = iterations.div_ceil(8).max(1);
    detector.analyze_batch(&uploads);
    let started = Instant::now();
    for _ in 0..rounds {
        for upload in &uploads {
            detector.analyze(upload.bytes, upload.declared_type, upload.options)?;
        }
    }
    let single = (rounds * 8) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..rounds {
        for outcome in detector.analyze_batch(&uploads) {
            outcome?;
        }
    }
    let batched = (rounds * 8) as f64 / started.elapsed().as_secs_f64();
    println!(
        "8 uploads at 640: one by one {single:.2} images/s, batched {batched:.2} images/s ({:.2}x)",
        batched / single
    );
    Ok(())
}
