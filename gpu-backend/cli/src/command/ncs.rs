//! `h200 ncs`: NCS over JSON lines on standard input or a file; points/s on standard error.

use anyhow::Context;

use crate::cli::NcsMode;

/// Clusters the points of the input, one JSON answer per line.
pub fn run(mode: NcsMode, input: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mode = crate::kernels::ncs_mode(mode);
    let device = candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu);
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
        "{} points in {:.3} s: {:.0} points/s ({:?} mode, {:?})",
        stats.points,
        stats.seconds,
        stats.points as f64 / stats.seconds.max(1e-9),
        mode,
        device
    );
    Ok(())
}
