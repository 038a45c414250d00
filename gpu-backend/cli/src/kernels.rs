//! The kernels a worker runs, built from flags: the queue knows none of them by name.

use std::sync::Arc;

use gpu_backend::queue::Kernels;
use gpu_backend::queue::noop::EchoKernel;

use crate::cli::{KernelArgs, NcsMode};

/// Every kernel this build has: `echo`, `ncs` in the chosen mode (batched mode on the first CUDA
/// device when built with `cuda` and one is present, else the CPU) and `analysis` with the
/// chosen weights (loaded on first use).
pub fn all(args: &KernelArgs) -> Kernels {
    let device = candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu);
    vec![
        Arc::new(EchoKernel),
        Arc::new(ncs::kernel::NcsKernel::new(ncs_mode(args.ncs_mode), device)),
        Arc::new(mug::kernel::AnalysisKernel::new(args.mug_model.clone())),
    ]
}

/// The NCS mode a flag names.
pub fn ncs_mode(mode: NcsMode) -> ncs::Mode {
    match mode {
        NcsMode::Exact => ncs::Mode::Exact,
        NcsMode::Batched => ncs::Mode::Batched,
    }
}
