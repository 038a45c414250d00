//! The job queue as the GPU side sees it: a [`Kernel`] trait that knows nothing of the queue, and
//! [`Worker`]s that claim batches of jobs under a lease, run them on a kernel and record the
//! outcome. Many workers, in this process or on other machines, share one queue table.

pub mod noop;
pub mod worker;

pub use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult};

/// The kernels a worker runs, shared by every worker of a process.
pub type Kernels = Vec<std::sync::Arc<dyn Kernel>>;
pub use worker::{Worker, WorkerExit, WorkerOptions};

/// Starts `count` workers inside this process with `kernels`. Sending `true` on
/// the returned channel stops them; the handles finish once they have.
pub async fn spawn_local_workers(
    store: &crate::store::Store,
    count: usize,
    kernels: &Kernels,
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
        let worker = Worker::register(store.clone(), kernels.clone(), options).await?;
        let mut stopped = stopped.clone();
        handles.push(tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    Ok((stop, handles))
}
