//! For tests and benchmarks: a process in its own mount namespace, as a container's would be.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `unshare -m --propagation private sleep 300` (needs root), killed on drop.
pub struct Contained(Child);

impl Contained {
    pub fn start() -> std::io::Result<Contained> {
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()?;
        let contained = Contained(child);
        let me = std::fs::read_link("/proc/self/ns/mnt")?;
        let pid = contained.pid();
        // unshare execs sleep in the same process once the namespace is made.
        for _ in 0..500 {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            if ns.is_some_and(|ns| ns != me) && exe.is_some_and(|e| e.ends_with("sleep")) {
                return Ok(contained);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(std::io::Error::other(
            "unshare -m made no mount namespace (it needs root)",
        ))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap_or_default()
    }

    /// `path` as the process sees it.
    pub fn sees(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid(), path.display()))
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
