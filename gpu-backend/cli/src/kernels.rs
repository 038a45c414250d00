//! The kernels a worker runs, built from flags: the queue knows none of them by name.

use std::sync::Arc;

use gpu_backend::queue::Kernels;
use gpu_backend::queue::noop::EchoKernel;

use crate::cli::{KernelArgs, NcsMode};

/// Every kernel this build has: `echo`, `ncs` in the chosen mode and `analysis` with the chosen
/// weights (loaded on first use), both on the device `--device` names (see
/// [`crate::device::choose`]; `cuda` without a usable GPU is an error).
pub fn all(args: &KernelArgs) -> anyhow::Result<Kernels> {
    let device = crate::device::choose(args.device)?;
    tracing::info!(device = %kernel::device_name(&device), "kernels");
    Ok(vec![
        Arc::new(EchoKernel),
        Arc::new(ncs::kernel::NcsKernel::new(
            ncs_mode(args.ncs_mode),
            device.clone(),
        )),
        Arc::new(mug::kernel::AnalysisKernel::on_device(
            args.mug_model.clone(),
            device,
        )),
    ])
}

/// The NCS mode a flag names.
pub fn ncs_mode(mode: NcsMode) -> ncs::Mode {
    match mode {
        NcsMode::Exact => ncs::Mode::Exact,
        NcsMode::Batched => ncs::Mode::Batched,
    }
}
