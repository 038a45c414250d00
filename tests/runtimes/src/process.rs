//! Process plumbing: children killed with their process group, the checkout's folders, free
//! ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process killed when dropped, however the caller ends. A process started with
/// [`Running::group`] leads its own process group, and the whole group is killed: Miniflare's
/// `workerd` outlives a killed `node` otherwise.
pub struct Running(pub Child);

impl Running {
    /// Spawns `command` as the leader of a new process group.
    pub fn group(command: &mut Command) -> std::io::Result<Running> {
        use std::os::unix::process::CommandExt;
        command.process_group(0).spawn().map(Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace root of the checkout this crate was built from (the folder of the top
/// `Cargo.toml`): the Worker and the components are built from its sources.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("this crate lives in tests/runtimes of the workspace")
        .to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}
