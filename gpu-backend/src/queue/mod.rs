//! The job queue as the GPU side sees it: a [`Kernel`] trait that knows nothing of the queue, and
//! [`Worker`]s that claim batches of jobs under a lease, run them on a kernel and record the
//! outcome. Many workers, in this process or on other machines, share one queue table.

pub mod bench;
pub mod kernel;
pub mod noop;
pub mod worker;

pub use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult};
pub use worker::{Worker, WorkerExit, WorkerOptions};

/// Every kernel this build has, ready to run.
pub fn available_kernels() -> Vec<std::sync::Arc<dyn Kernel>> {
    vec![std::sync::Arc::new(noop::EchoKernel)]
}
