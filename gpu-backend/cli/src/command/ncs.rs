//! `h200 ncs`: NCS over JSON lines on standard input or a file; points/s on standard error.

use anyhow::Context;

use crate::cli::{DeviceChoice, NcsMode};

/// Clusters the points of the input, one JSON answer per line.
pub fn run(
    mode: NcsMode,
    input: Option<std::path::PathBuf>,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let mode = crate::kernels::ncs_mode(mode);
    let device = crate::device::choose(device)?;
    let stdout = std::io::stdout().lock();
    let stats = match input {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            ncs::run_jsonl(mode, std::io::BufReader::new(file), stdout, &device)?
        }
        None => ncs::run_jsonl(mode, std::io::stdin().lock(), stdout, &device)?,
    };
    eprintln!(
        "{} points in {:.3} s: {:.0} points/s ({:?} mode, {})",
        stats.points,
        stats.seconds,
        stats.points as f64 / stats.seconds.max(1e-9),
        mode,
        kernel::device_name(&device)
    );
    Ok(())
}
