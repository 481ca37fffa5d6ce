//! Progress reporting from libraries to whoever draws it.
//!
//! Libraries never print; long operations (downloads, transcription of long audio) call a
//! [`Progress`] handle. The CLI turns the events into indicatif bars on stderr; tests and the
//! bench harness pass [`Progress::none`].

use std::sync::Arc;

/// The unit of a progress total, so that a bar can format it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (downloads).
    Bytes,
    /// Seconds of media (audio processed).
    Seconds,
    /// Plain items (steps, files).
    Items,
}

/// One progress event. Tasks are sequential: a `Begin` is followed by `Update`s and an `End`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// A task starts.
    Begin {
        /// What is being done ("model.safetensors", "transcribing").
        label: String,
        /// Total amount, if known.
        total: Option<u64>,
        /// Unit of `total` and of updates.
        unit: Unit,
    },
    /// The amount done so far (absolute, not a delta).
    Update {
        /// Amount done.
        done: u64,
    },
    /// A line of status for the user (e.g. a warning), shown above the bars.
    Message(String),
    /// The current task ended.
    End,
}

type Callback = dyn Fn(&ProgressEvent) + Send + Sync;

/// A cheap, clonable progress handle; [`Progress::none`] ignores everything.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Callback>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(callback)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    /// A handle that reports to `callback`.
    pub fn new(callback: impl Fn(&ProgressEvent) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(callback)))
    }

    /// A handle that reports nothing.
    pub fn none() -> Self {
        Self(None)
    }

    /// Sends one event.
    pub fn emit(&self, event: ProgressEvent) {
        if let Some(callback) = &self.0 {
            callback(&event);
        }
    }

    /// Starts a task.
    pub fn begin(&self, label: impl Into<String>, total: Option<u64>, unit: Unit) {
        self.emit(ProgressEvent::Begin {
            label: label.into(),
            total,
            unit,
        });
    }

    /// Reports the amount done so far.
    pub fn update(&self, done: u64) {
        self.emit(ProgressEvent::Update { done });
    }

    /// Reports a status line (warnings, notes).
    pub fn message(&self, text: impl Into<String>) {
        self.emit(ProgressEvent::Message(text.into()));
    }

    /// Ends the current task.
    pub fn end(&self) {
        self.emit(ProgressEvent::End);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn forwards_events_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::new(move |e| sink.lock().unwrap().push(e.clone()));
        progress.begin("x", Some(10), Unit::Items);
        progress.update(4);
        progress.end();
        Progress::none().update(1);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1], ProgressEvent::Update { done: 4 });
    }
}
