//! JSON log lines via tracing-subscriber. The Lambda runtime opens a span per
//! invocation carrying `requestId`; our HTTP glue adds `correlation_id`. Values
//! that are secrets never reach a log call, so there is nothing to redact here.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    init_with_writer(std::io::stdout);
}

/// Installs the JSON subscriber writing to `writer`; a no-op if one is already
/// installed (tests install theirs first to capture the lines).
pub fn init_with_writer<W>(writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(writer)
                .with_current_span(false)
                .with_span_list(true)
                .flatten_event(true)
                .with_target(false),
        )
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .try_init();
}

/// `RUST_LOG` as levels per target (`info`, `caas=debug,aws_smithy_runtime=warn`),
/// `info` when unset or unreadable. (Targets, not EnvFilter: no span or field
/// directives, and no regex engine in every bundle.)
fn filter(directives: Option<&str>) -> Targets {
    directives
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_per_target() {
        let default = filter(None);
        assert!(default.would_enable("caas", &Level::INFO) && !default.would_enable("caas", &Level::DEBUG));
        let custom = filter(Some("warn,caas=debug"));
        assert!(custom.would_enable("caas::store", &Level::DEBUG));
        assert!(!custom.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(filter(Some("=?!")).would_enable("caas", &Level::INFO), "unreadable: info");
    }
}
