//! Turns library progress events into indicatif bars on stderr.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use mlbench_core::progress::{Progress, ProgressEvent, Unit};

/// A [`Progress`] that draws one bar per task on stderr (hidden when stderr is not a terminal).
pub fn bars(quiet: bool) -> Progress {
    if quiet {
        return Progress::none();
    }
    let current: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
    Progress::new(move |event| {
        let mut slot = current.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            ProgressEvent::Begin { label, total, unit } => {
                let bar = match total {
                    Some(t) => ProgressBar::new(*t),
                    None => ProgressBar::new_spinner(),
                };
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                let template = match unit {
                    Unit::Bytes => {
                        "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
                    }
                    Unit::Seconds => "{msg:20} [{bar:30}] {pos}/{len} s {elapsed}",
                    Unit::Items => "{msg:20} [{bar:30}] {pos}/{len} {elapsed}",
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(label.clone());
                *slot = Some(bar);
            }
            ProgressEvent::Update { done } => {
                if let Some(bar) = slot.as_ref() {
                    bar.set_position(*done);
                }
            }
            ProgressEvent::Message(text) => match slot.as_ref() {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            },
            ProgressEvent::End => {
                if let Some(bar) = slot.take() {
                    bar.finish_and_clear();
                }
            }
        }
    })
}
