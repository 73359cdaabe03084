//! The progress bars of `bosun-agent image pull` on a terminal: one bar per layer (bytes,
//! rate), drawn on stderr. Log lines go through [`LogWriter`], which lifts the bars while a
//! line is written so the two never mix. When stderr is not a terminal there are no bars and
//! the output stays plain (the pull's per-layer `tracing` lines say the same).

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};

use bosun_agent::image::PullProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars being drawn, if any: the log writer lifts them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Per-layer bars for a pull, or None when stderr is not a terminal.
pub fn layer_bars() -> Option<Arc<dyn PullProgress>> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let multi = BARS
        .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        .clone();
    Some(Arc::new(LayerBars {
        multi,
        bars: Mutex::default(),
    }))
}

struct LayerBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl LayerBars {
    fn with_bar(&self, digest: &str, f: impl FnOnce(&ProgressBar)) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = bars.get(digest) {
            f(bar);
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl PullProgress for LayerBars {
    fn layer(&self, digest: &str, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(style());
        let short: String = digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        bar.set_prefix(short);
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.insert(digest.to_owned(), bar);
    }

    fn bytes(&self, digest: &str, bytes: u64) {
        self.with_bar(digest, |b| b.inc(bytes));
    }

    fn restarted(&self, digest: &str) {
        self.with_bar(digest, |b| b.set_position(0));
    }

    fn done(&self, digest: &str) {
        self.with_bar(digest, |b| {
            if let Some(len) = b.length() {
                b.set_position(len);
            }
            b.finish_with_message("done");
        });
    }
}

/// stderr for the log lines, with any bars lifted while a line is written.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
