//! `--device`: the one place that turns the flag into a candle device, so no kernel falls back to
//! the CPU without saying so.

use anyhow::bail;
use candle_core::Device;

use crate::cli::DeviceChoice;

/// The device `choice` names. `auto` takes the first CUDA GPU when this build has `cuda` and one
/// answers, and otherwise the CPU, with a warning that says why when the build could have used
/// a GPU; `cuda` fails instead of falling back.
pub fn choose(choice: DeviceChoice) -> anyhow::Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => cuda(),
        DeviceChoice::Auto => {
            if !cfg!(feature = "cuda") {
                return Ok(Device::Cpu);
            }
            match cuda() {
                Ok(device) => Ok(device),
                Err(e) => {
                    tracing::warn!(error = %e, "no CUDA device answered; the kernels run on the CPU");
                    Ok(Device::Cpu)
                }
            }
        }
    }
}

/// The first CUDA GPU, or why there is none.
fn cuda() -> anyhow::Result<Device> {
    if !cfg!(feature = "cuda") {
        bail!("this h200 was built without the `cuda` feature; use --device cpu or auto");
    }
    match Device::new_cuda(0) {
        Ok(device) => Ok(device),
        Err(e) => bail!("CUDA device 0 is not usable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_cpu_and_auto_falls_back_to_it_without_a_gpu() {
        assert!(matches!(choose(DeviceChoice::Cpu).unwrap(), Device::Cpu));
        if !cfg!(feature = "cuda") {
            assert!(matches!(choose(DeviceChoice::Auto).unwrap(), Device::Cpu));
            let refused = choose(DeviceChoice::Cuda).unwrap_err().to_string();
            assert!(refused.contains("without the `cuda` feature"), "{refused}");
        }
    }
}
