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
        stderr.contains("2 analyses at 256 px on ") && stderr.contains("images/s"),
        "{stderr}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["detect", "no-such-file.png"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}
