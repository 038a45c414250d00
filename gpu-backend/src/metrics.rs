//! Counters and latency histograms of the backend, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the request-duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The backend's metrics. Cheap to update from any task; rendering takes a snapshot.
#[derive(Default)]
pub struct Metrics {
    /// Counters by (name, labels).
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    /// Request durations by route pattern.
    durations: Mutex<BTreeMap<String, Histogram>>,
}

/// Help text of each counter family.
const HELP: &[(&str, &str)] = &[
    (
        "h200_http_requests_total",
        "HTTP requests answered, by route pattern, method and status.",
    ),
    (
        "h200_signature_refusals_total",
        "Requests refused by the signature gate, by code.",
    ),
    ("h200_logins_total", "Login attempts, by outcome."),
    (
        "h200_audit_events_ingested_total",
        "Audit events stored, by source.",
    ),
    (
        "h200_audit_events_duplicate_total",
        "Audit events received again and skipped.",
    ),
];

impl Metrics {
    /// Adds `by` to the counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry(key).or_insert(0) += by;
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// The current value of a counter (0 when never touched).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (
            name,
            labels
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect::<Labels>(),
        );
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.get(&key).copied().unwrap_or(0)
    }

    /// Records one request's duration under its route pattern.
    pub fn observe_duration(&self, route: &str, seconds: f64) {
        let mut durations = self.durations.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = durations.entry(route.to_owned()).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(DURATION_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last_name = "";
        for ((name, labels), value) in counters.iter() {
            if *name != last_name {
                let help = HELP.iter().find(|(n, _)| n == name).map_or("", |(_, h)| h);
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last_name = name;
            }
            let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
        }
        drop(counters);
        let durations = self.durations.lock().unwrap_or_else(|p| p.into_inner());
        if !durations.is_empty() {
            let name = "h200_http_request_duration_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time to answer a request, by route pattern.\n# TYPE {name} histogram"
            );
            for (route, histogram) in durations.iter() {
                let labels: Labels = vec![("route", route.clone())];
                for (count, bound) in histogram.buckets.iter().zip(DURATION_BUCKETS) {
                    let le = bound.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(&labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(&labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(&labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(&labels, None),
                    histogram.count
                );
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.inc("h200_logins_total", &[("outcome", "success")]);
        metrics.add("h200_logins_total", &[("outcome", "failure")], 2);
        metrics.observe_duration("/auth/login", 0.003);
        let text = metrics.render();
        assert!(text.contains("# TYPE h200_logins_total counter"), "{text}");
        assert!(
            text.contains("h200_logins_total{outcome=\"failure\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("h200_logins_total{outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "h200_http_request_duration_seconds_bucket{route=\"/auth/login\",le=\"0.0025\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "h200_http_request_duration_seconds_bucket{route=\"/auth/login\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("h200_http_request_duration_seconds_count{route=\"/auth/login\"} 1"),
            "{text}"
        );
        assert_eq!(
            metrics.get("h200_logins_total", &[("outcome", "failure")]),
            2
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.inc("h200_signature_refusals_total", &[("code", "a\"b\\c")]);
        assert!(metrics.render().contains(r#"code="a\"b\\c""#));
    }
}
