//! The node's log lines through `tracing`: text for terminals (`attnet:
//! message`, as the node always wrote, with `warning:` and `error:` said)
//! or one JSON object a line for journald and ELK (`--log-format json`).
//! The level filter can be changed while the node runs (SIGHUP re-reads
//! `log_level`), through a reload handle kept here.

use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogFormat;

/// The filter of a `log_level` value: a level (`info`) or directives
/// (`info,control=debug`), each a level or `target=level` (a bare word
/// that is no level, which `tracing` would take as a target, is refused:
/// it is almost always a misspelt level).
pub fn filter(s: &str) -> Result<EnvFilter, String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for d in s.split(',') {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l).trim();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("is not a log filter (`{d}`: a level {LEVELS:?} or target=level)"));
        }
    }
    let mut f = EnvFilter::builder().parse(s).map_err(|e| format!("is not a log filter ({e})"))?;
    // The consensus engine logs every round step at info: its warnings
    // only, unless the filter names it (`arc_malachitebft_core_consensus=debug`).
    if !s.contains("malachitebft") {
        for target in MALACHITE {
            if let Ok(d) = format!("{target}=warn").parse() {
                f = f.add_directive(d);
            }
        }
    }
    Ok(f)
}

/// The consensus engine's crates (log targets).
const MALACHITE: [&str; 4] = [
    "arc_malachitebft_core_consensus",
    "arc_malachitebft_core_driver",
    "arc_malachitebft_core_votekeeper",
    "arc_malachitebft_core_state_machine",
];

static RELOAD: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the process's logger (the first call wins: later calls, such
/// as a second node in one test process, keep it and only set the level).
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let f = filter(level).map_err(|e| format!("log_level `{level}` {e}"))?;
    if RELOAD.get().is_some() {
        return set_level(level);
    }
    let (layer, handle) = reload::Layer::new(f);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => Registry::default().with(layer).with(fmt.event_format(Plain)).try_init(),
        LogFormat::Json => Registry::default()
            .with(layer)
            .with(fmt.json().flatten_event(true).with_current_span(false).with_span_list(false))
            .try_init(),
    };
    if res.is_ok() {
        let _ = RELOAD.set(handle);
    }
    Ok(())
}

/// Changes the level filter of the installed logger.
pub fn set_level(level: &str) -> Result<(), String> {
    let f = filter(level).map_err(|e| format!("log_level `{level}` {e}"))?;
    match RELOAD.get() {
        Some(h) => h.reload(f).map_err(|e| format!("log level: {e}")),
        None => Ok(()),
    }
}

/// `attnet: message k=v`, with `warning: ` or `error: ` before the
/// message at those levels, and the target for debug and trace.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let m = event.metadata();
        w.write_str("attnet: ")?;
        match *m.level() {
            Level::ERROR => w.write_str("error: ")?,
            Level::WARN => w.write_str("warning: ")?,
            Level::INFO => {}
            _ => write!(w, "{} {}: ", m.level(), m.target())?,
        }
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_are_checked() {
        assert!(super::filter("info").is_ok());
        assert!(super::filter("warn,control=debug").is_ok());
        let e = super::filter("loud").unwrap_err();
        assert!(e.contains("not a log filter"), "{e}");
    }
}
