//! Progress bars on stderr, drawn only for a human at a terminal.

use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::render::rate;
use crate::Ctx;

/// True if progress bars may be drawn: stderr is a terminal and the output is not JSON.
pub fn progress_visible(ctx: Ctx) -> bool {
    !ctx.json && io::stderr().is_terminal()
}

/// A progress bar on stderr, hidden unless [`progress_visible`]. `bytes` picks the units.
pub fn progress_bar(ctx: Ctx, len: u64, bytes: bool, what: &str) -> ProgressBar {
    if !progress_visible(ctx) {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta})"
    } else {
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({rate}/s, {eta})"
    };
    // `{per_sec}` prints four decimals; `rate` reads better ("1.23 M/s").
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
        "rate",
        |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", rate(s.per_sec()));
        },
    );
    let bar =
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style.progress_chars("=> "));
    bar.set_message(what.to_owned());
    bar
}
