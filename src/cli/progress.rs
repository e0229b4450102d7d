//! The progress bar (indicatif, on stderr, drawn only when stderr is a terminal and not
//! `--quiet`) and error lines that do not tear it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `len` images; hidden when `quiet`.
    pub fn new(len: usize, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(len as u64), target);
        let style = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} images  {per_sec}  ETA {eta}  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar }
    }

    /// Shows what is being worked on.
    pub fn working_on(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    pub fn advance(&self, images: usize) {
        self.bar.inc(images as u64);
    }

    /// Prints an error line above the bar.
    pub fn error(&self, message: impl std::fmt::Display) {
        self.bar.suspend(|| super::report(message));
    }

    /// Prints a result line on stdout, above the bar; fails as [`super::print_stdout`] does.
    pub fn println(&self, line: &str) -> Result<(), Option<String>> {
        self.bar
            .suspend(|| super::print_stdout(&format!("{line}\n")))
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
