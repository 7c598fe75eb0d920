//! What hosts are doing: one live line per host on a terminal (its step and elapsed time), one
//! plain line per step otherwise; and every host's full log — steps and script output, never the
//! scripts themselves — kept under `CLOUDER_HOME/kubeadm/NAME/logs/HOST.log`, mode 0600.

use clouder_node::Output;
use clouder_node::watch::{Ended, Watch};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

enum View {
    Quiet,
    Lines,
    Live {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

pub struct HostProgress {
    view: View,
    logs: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

impl HostProgress {
    pub fn new(quiet: bool, logs: PathBuf) -> Self {
        let view = if quiet {
            View::Quiet
        } else if std::io::stderr().is_terminal() {
            View::Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            View::Lines
        };
        HostProgress {
            view,
            logs,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Appends to the host's log; a log that cannot be written never stops the work.
    fn log(&self, host: &str, text: &str) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if !files.contains_key(host) {
            let name = host.replace(['/', ':'], "_");
            let opened = crate::home::private_dir(&self.logs).ok().and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(self.logs.join(format!("{name}.log")))
                    .ok()
            });
            match opened {
                Some(f) => files.insert(host.to_string(), f),
                None => return,
            };
        }
        let at = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        if let Some(f) = files.get_mut(host) {
            for line in text.lines() {
                let _ = writeln!(f, "{at} {line}");
            }
        }
    }

    fn bar(&self, host: &str, update: impl FnOnce(&ProgressBar)) {
        if let View::Live { multi, bars } = &self.view {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            let bar = bars.entry(host.to_string()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{prefix:<28} {spinner} {wide_msg} {elapsed:>4}")
                        .expect("valid template"),
                );
                b.set_prefix(host.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            });
            update(bar);
        }
    }
}

impl Watch for HostProgress {
    fn started(&self, host: &str, step: &str) {
        self.log(host, &format!("== {step}"));
        match &self.view {
            View::Lines => eprintln!("{host}: {step} ..."),
            View::Live { .. } => self.bar(host, |b| b.set_message(step.to_string())),
            View::Quiet => {}
        }
    }

    fn ended(&self, host: &str, step: &str, ended: Ended, elapsed: Duration) {
        let line = format!("{step}: {} ({:.1}s)", ended.as_str(), elapsed.as_secs_f64());
        self.log(host, &format!("== {line}"));
        match &self.view {
            View::Lines => eprintln!("{host}: {line}"),
            View::Live { .. } => self.bar(host, |b| b.set_message(line)),
            View::Quiet => {}
        }
    }

    fn output(&self, host: &str, output: &Output) {
        let mut text = String::new();
        for line in output.stdout.lines() {
            text += &format!("| {line}\n");
        }
        for line in output.stderr.lines() {
            text += &format!("! {line}\n");
        }
        if output.status != 0 {
            text += &format!("exit {}\n", output.status);
        }
        self.log(host, &text);
    }

    fn finish(&self) {
        if let View::Live { bars, .. } = &self.view {
            for bar in bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
                bar.finish_and_clear();
            }
        }
    }
}
