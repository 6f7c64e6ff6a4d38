//! Trace context kept with work that outlives its request: a cycle started
//! by `EvaluateNow`, a run worked by the execution worker minutes later. The
//! request's W3C `traceparent` is stored with the work; the worker's spans
//! continue that trace (or link to it when one span serves many), so one
//! trace follows an `EvaluateNow` down to the fills.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, `None` when nothing is traced
/// (no exporter, or an unsampled span).
#[must_use]
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier.remove(TRACEPARENT)
}

fn span_context(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span`, not yet entered, a child of the stored trace; nothing when
/// there is none or it is malformed.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(span_context) {
        let context = opentelemetry::Context::new().with_remote_span_context(parent);
        let _ = span.set_parent(context);
    }
}

/// Continues the first stored trace of `traceparents` in `span` (not yet
/// entered) and links it to the others (at most 32): a transmission of runs
/// opened by one cycle sits in that cycle's trace.
pub fn continue_traces<'a>(span: &tracing::Span, traceparents: impl IntoIterator<Item = &'a str>) {
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    for traceparent in traceparents {
        let Some(context) = span_context(traceparent) else {
            continue;
        };
        if !seen.insert(context.trace_id()) {
            continue;
        }
        if first {
            let parent = opentelemetry::Context::new().with_remote_span_context(context);
            let _ = span.set_parent(parent);
            first = false;
        } else if seen.len() <= 33 {
            span.add_link(context);
        }
    }
}
