//! The `h200` binary from the outside: commands that print what a user reads.

use mug::Analysis;

/// The example image of the README and the end-to-end tests.
const EXAMPLE_IMAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/desk-two-mugs.png"
);

/// `h200 detect` prints the analysis of a file as JSON, and with `--bench` the speed.
#[test]
fn h200_detect_prints_the_analysis_and_the_speed() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["detect", EXAMPLE_IMAGE, "--calibration-mm-per-pixel", "0.5"])
        .args(["--bench", "2"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let analysis: Analysis = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(analysis.mug_count, 2);
    assert!(analysis.positioning.iter().all(|p| p.offset_mm.is_some()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 passes of 1 image(s) at 256 px on cpu: ")
            && stderr.contains("images/s, per pass p50 "),
        "{stderr}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["detect", "no-such-file.png"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

/// `--batch` analyses copies of the image in one forward pass; `--device cuda` refuses to fall
/// back to the CPU in a build without CUDA.
#[test]
fn h200_detect_benches_batches_and_names_its_device() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args([
            "detect",
            EXAMPLE_IMAGE,
            "--device",
            "cpu",
            "--image-size",
            "320",
        ])
        .args(["--bench", "2", "--batch", "3"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 passes of 3 image(s) at 320 px on cpu: "),
        "{stderr}"
    );
    if !cfg!(feature = "cuda") {
        let refused = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
            .args(["detect", EXAMPLE_IMAGE, "--device", "cuda"])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("without the `cuda` feature"), "{stderr}");
    }
}

/// `h200 bench ncs` prints exact and batched rates and an adjusted Rand index of 1 for each
/// batched run, one stream and several at once.
#[test]
fn h200_bench_ncs_compares_the_modes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args([
            "bench",
            "ncs",
            "--device",
            "cpu",
            "--dims",
            "8",
            "--clusters",
            "3",
        ])
        .args(["--points", "3000", "--chunks", "64", "--streams", "4"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("d=8 k=3 exact cpu: "), "{stdout}");
    assert!(
        stdout.contains("d=8 k=3 4 streams at once, exact cpu: "),
        "{stdout}"
    );
    let aris: Vec<f64> = stdout
        .lines()
        .filter_map(|line| line.split("ARI vs exact ").nth(1))
        .map(|ari| ari.trim().parse().unwrap())
        .collect();
    assert_eq!(aris.len(), 2, "{stdout}");
    assert!(aris.iter().all(|&ari| ari >= 0.999), "{stdout}");
}

/// Runs `h200 bench worker` with `args` on a scratch SQLite queue of its own.
fn bench_worker(name: &str, args: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("h200-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("queue.db").display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["bench", "worker", "--database-url", &url])
        .args(["--image", EXAMPLE_IMAGE])
        .args(args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    output
}

/// `h200 bench worker` queues analyses and NCS batches, drains them with a real `h200 worker`
/// process, reports the worker's device, and stops the worker.
#[test]
fn h200_bench_worker_drains_the_queue() {
    let args = "--analyses 3 --ncs-jobs 6 --points 50 --streams 2 --device cpu \
                --ncs-mode batched --timeout-secs 120";
    let output = bench_worker("bench-worker", &args.split_whitespace().collect::<Vec<_>>());
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" on cpu (kinds "), "{stdout}");
    assert!(stdout.contains("analysis: 3 jobs in "), "{stdout}");
    assert!(
        stdout.contains("ncs: 6 jobs of 50 points (d=16, 2 streams)"),
        "{stdout}"
    );
    assert!(stdout.contains("cpu (done 9, failed 0)"), "{stdout}");
    if !cfg!(feature = "cuda") {
        // A worker that cannot start on the device asked for fails the bench at once.
        let refused = bench_worker(
            "bench-nocuda",
            &["--device", "cuda", "--timeout-secs", "600"],
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("exited before registering"), "{stderr}");
    }
}
