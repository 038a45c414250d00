//! `h200 detect` and `h200 train-detector`: the mug detector from the command line.

use anyhow::{Context, bail};

use crate::cli::{DetectArgs, TrainDetectorArgs};

/// Finds and positions the mugs in an image; prints the analysis as JSON.
pub fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    use mug::{AnalyzeOptions, Detector, postprocess::Thresholds};
    for (name, value) in [("confidence", args.confidence), ("iou", args.iou)] {
        if !(0.0..=1.0).contains(&value) {
            bail!("--{name} must be between 0 and 1");
        }
    }
    if let Some(mm) = args.calibration_mm_per_pixel
        && !(mm.is_finite() && mm > 0.0 && mm <= shared::body::analysis::MAX_MM_PER_PIXEL)
    {
        bail!("--calibration-mm-per-pixel must be above 0 and at most 100");
    }
    let device = crate::device::choose(args.device)?;
    let detector = match &args.model {
        Some(path) => Detector::from_file_on(path, &device)
            .with_context(|| format!("loading the model {}", path.display()))?,
        None => Detector::shipped_on(&device).context("loading the shipped mug detector")?,
    };
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let options = AnalyzeOptions {
        thresholds: Thresholds {
            confidence: args.confidence,
            iou: args.iou,
        },
        reference_point: None,
        mm_per_pixel: args.calibration_mm_per_pixel,
        input_size: args.image_size,
    };
    let analysis = detector
        .analyze(&bytes, None, &options)
        .with_context(|| format!("analysing {}", args.image.display()))?;
    println!("{}", serde_json::to_string_pretty(&analysis)?);
    if let Some(runs) = args.bench.filter(|&n| n > 0) {
        bench(&detector, &bytes, &options, runs, args.batch.max(1))?;
    }
    Ok(())
}

/// Times `runs` forward passes of `batch` copies of the image (decode included) after a warm-up
/// of three, and prints images/s and the p50/p95 milliseconds per pass on standard error.
fn bench(
    detector: &mug::Detector,
    bytes: &[u8],
    options: &mug::AnalyzeOptions,
    runs: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let uploads: Vec<mug::Upload<'_>> = (0..batch)
        .map(|_| mug::Upload {
            bytes,
            declared_type: None,
            options,
        })
        .collect();
    let pass = || -> anyhow::Result<()> {
        if batch == 1 {
            detector.analyze(bytes, None, options)?;
        } else {
            for outcome in detector.analyze_batch(&uploads) {
                outcome?;
            }
        }
        Ok(())
    };
    for _ in 0..3 {
        pass()?;
    }
    let mut millis = Vec::with_capacity(runs);
    let started = std::time::Instant::now();
    for _ in 0..runs {
        let one = std::time::Instant::now();
        pass()?;
        millis.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    let seconds = started.elapsed().as_secs_f64();
    millis.sort_by(f64::total_cmp);
    let percentile = |p: f64| millis[((millis.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "{runs} passes of {batch} image(s) at {} px on {}: {:.2} images/s, per pass p50 {:.1} ms, \
         p95 {:.1} ms",
        options.input_size.unwrap_or(detector.input_size()),
        kernel::device_name(detector.device()),
        (runs * batch) as f64 / seconds,
        percentile(0.5),
        percentile(0.95),
    );
    Ok(())
}

/// Trains the detector on synthetic scenes (resumable), then measures mAP@0.5.
pub fn train(args: &TrainDetectorArgs) -> anyhow::Result<()> {
    use mug::train::{TrainConfig, train};
    if args.batch == 0 || args.image_size < 32 || !args.image_size.is_multiple_of(32) {
        bail!("--batch must be at least 1 and --image-size a multiple of 32");
    }
    let config = TrainConfig {
        out: args.out.clone(),
        steps: args.steps,
        batch: args.batch,
        image_size: args.image_size,
        seed: args.seed,
        resume: args.resume,
        learning_rate: args.learning_rate,
        ..TrainConfig::default()
    };
    if !args.evaluate_only {
        let summary = train(&config).context("training the detector")?;
        eprintln!(
            "trained {} steps in {:.0} s this run; mean loss of the last steps {:.3}; weights in {}",
            summary.steps,
            summary.seconds,
            summary.final_loss,
            args.out.display()
        );
    }
    if args.eval_images > 0 {
        let detector = mug::Detector::from_file(&args.out)
            .with_context(|| format!("loading {}", args.out.display()))?;
        let started = std::time::Instant::now();
        let map = mug::metrics::evaluate_synthetic(&detector, args.eval_images, args.image_size)?;
        println!(
            "mAP@0.5 on {} held-out synthetic scenes ({} px): {map:.4} ({:.1} s)",
            args.eval_images,
            args.image_size,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
