//! Draws engine events: a progress bar on a terminal, one plain line per step otherwise.

use clouder_engine::{Action, Event, Reporter};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub enum Progress {
    Quiet,
    Lines,
    Bar(Mutex<Option<ProgressBar>>),
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar(Mutex::new(None))
        } else {
            Progress::Lines
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self
            && let Some(bar) = bar.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            bar.finish_and_clear();
        }
    }
}

fn step(action: &Action, id: &str, kind: &str) -> String {
    format!("{} {kind} {id}", action.verb())
}

impl Reporter for Progress {
    fn event(&self, event: Event<'_>) {
        match (self, event) {
            (Progress::Quiet, _) => {}
            (Progress::Lines, Event::Phase { name, total }) if total > 0 && name != "plan" => {
                eprintln!("==> {name}: {total} steps")
            }
            (
                Progress::Lines,
                Event::Done {
                    id,
                    action,
                    cloud_id,
                },
            ) => eprintln!("    {} {id} {cloud_id}", action.verb()),
            (Progress::Lines, Event::Retrying { id, attempt, error }) => {
                eprintln!("    retry {attempt} {id}: {error}")
            }
            (Progress::Lines, Event::Failed { id, error }) => eprintln!("    FAILED {id}: {error}"),
            (Progress::Bar(bar), event) => {
                let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Event::Phase { name, total } => {
                        if let Some(old) = bar.take() {
                            old.finish_and_clear();
                        }
                        let b = ProgressBar::with_draw_target(
                            Some(total as u64),
                            ProgressDrawTarget::stderr(),
                        );
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix:>8} [{bar:30}] {pos}/{len} {wide_msg}",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        b.set_prefix(name.to_string());
                        *bar = Some(b);
                    }
                    Event::Started { id, kind, action } => {
                        if let Some(b) = bar.as_ref() {
                            b.set_message(step(action, id, kind));
                        }
                    }
                    Event::Done { .. } => {
                        if let Some(b) = bar.as_ref() {
                            b.inc(1);
                        }
                    }
                    Event::Retrying { id, attempt, error } => {
                        if let Some(b) = bar.as_ref() {
                            b.set_message(format!("retry {attempt} {id}: {error}"));
                        }
                    }
                    Event::Failed { id, error } => {
                        if let Some(b) = bar.as_ref() {
                            b.println(format!("FAILED {id}: {error}"));
                            b.inc(1);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
