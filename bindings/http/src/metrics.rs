//! Request counters and a latency histogram per route template, and error counts by route,
//! tenant id and class, rendered in the Prometheus text format at `GET /metrics` (which needs
//! the admin key or the metrics token: see `server`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// (route, tenant id or `-`, `4xx`/`5xx`) → count.
    errors: Mutex<BTreeMap<(String, String, &'static str), u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Records one finished request (`tenant`: the tenant it was made for, if any).
    pub fn record(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
        took: Duration,
        tenant: Option<&str>,
    ) {
        *self.requests.lock().entry((method, route.to_owned(), status)).or_insert(0) += 1;
        let class = match status {
            400..=499 => Some("4xx"),
            500..=599 => Some("5xx"),
            _ => None,
        };
        if let Some(class) = class {
            let key = (route.to_owned(), tenant.unwrap_or("-").to_owned(), class);
            *self.errors.lock().entry(key).or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        let mut latency = self.latency.lock();
        let h = latency.entry(route.to_owned()).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.counts[i] += 1;
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition, followed by `extra` (already formatted families).
    pub fn render(&self, in_flight: u64, extra: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP memsilo_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE memsilo_http_requests_total counter\n");
        for ((method, route, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "memsilo_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP memsilo_http_request_duration_seconds Time to answer a request, by route template.\n");
        out.push_str("# TYPE memsilo_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().iter() {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "memsilo_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "memsilo_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "memsilo_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "memsilo_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP memsilo_http_errors_total Refused and failed HTTP requests by route template, tenant id (- for none) and class.\n");
        out.push_str("# TYPE memsilo_http_errors_total counter\n");
        for ((route, tenant, class), n) in self.errors.lock().iter() {
            let _ = writeln!(
                out,
                "memsilo_http_errors_total{{route=\"{}\",tenant_id=\"{}\",class=\"{class}\"}} {n}",
                escape(route),
                escape(tenant)
            );
        }
        out.push_str("# HELP memsilo_http_requests_in_flight Requests being answered now.\n");
        out.push_str("# TYPE memsilo_http_requests_in_flight gauge\n");
        let _ = writeln!(out, "memsilo_http_requests_in_flight {in_flight}");
        out.push_str(extra);
        out
    }
}

/// Escapes a label value.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.record("GET", "/v1/x", 200, Duration::from_micros(300), None);
        m.record("GET", "/v1/x", 200, Duration::from_millis(30), Some("t1"));
        m.record("GET", "/v1/x", 404, Duration::from_secs(20), Some("t1"));
        let text = m.render(0, "");
        assert!(text.contains(
            "memsilo_http_requests_total{method=\"GET\",route=\"/v1/x\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "memsilo_http_request_duration_seconds_bucket{route=\"/v1/x\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "memsilo_http_request_duration_seconds_bucket{route=\"/v1/x\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "memsilo_http_request_duration_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains(
            "memsilo_http_errors_total{route=\"/v1/x\",tenant_id=\"t1\",class=\"4xx\"} 1"
        ));
    }
}
