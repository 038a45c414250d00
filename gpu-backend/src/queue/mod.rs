//! The job queue as the GPU side sees it: a [`Kernel`] trait that knows nothing of the queue, and
//! [`Worker`]s that claim batches of jobs under a lease, run them on a kernel and record the
//! outcome. Many workers, in this process or on other machines, share one queue table.

pub mod bench;
pub mod kernel;
pub mod noop;
pub mod worker;

pub use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult};
pub use worker::{Worker, WorkerExit, WorkerOptions};

/// Every kernel this build has, ready to run. The `analysis` kernel loads the detector named by
/// `H200_MUG_MODEL` (the shipped one when unset) once per process. NCS runs in exact mode unless
/// `H200_NCS_MODE=batched`; batched mode uses the first CUDA device when the build has the
/// `cuda` feature and one is present, else the CPU.
pub fn available_kernels() -> Vec<std::sync::Arc<dyn Kernel>> {
    let mode = match std::env::var("H200_NCS_MODE").as_deref() {
        Ok("batched") => crate::ncs::Mode::Batched,
        _ => crate::ncs::Mode::Exact,
    };
    let device = candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu);
    vec![
        std::sync::Arc::new(noop::EchoKernel),
        std::sync::Arc::new(crate::ncs::kernel::NcsKernel::new(mode, device)),
        std::sync::Arc::new(crate::mug::kernel::AnalysisKernel::new()),
    ]
}

/// Starts `count` workers inside this process with every available kernel. Sending `true` on
/// the returned channel stops them; the handles finish once they have.
pub async fn spawn_local_workers(
    store: &crate::store::Store,
    count: usize,
    database_url: &str,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<anyhow::Result<WorkerExit>>>,
)> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let options = WorkerOptions {
            name: format!("local-{i}"),
            listen_url: database_url
                .starts_with("postgres")
                .then(|| database_url.to_owned()),
            ..WorkerOptions::default()
        };
        let worker = Worker::register(store.clone(), available_kernels(), options).await?;
        let mut stopped = stopped.clone();
        handles.push(tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    Ok((stop, handles))
}
