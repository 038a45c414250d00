//! Detection throughput on CPU: images per second through the shipped detector with the input
//! letterboxed to 640 (and to the model's own 256 for comparison), on a synthetic 640×480 scene.
//! Run with `cargo bench -p h200-gpu-backend --bench detect`; `DETECT_BENCH_ITERS` sets the
//! number of timed images (default 20).

use std::time::Instant;

use gpu_backend::mug::postprocess::Thresholds;
use gpu_backend::mug::synthetic::random_scene;
use gpu_backend::mug::{AnalyzeOptions, Detector};

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
    Ok(())
}
