//! Request counters and a latency histogram per route template, error counts by route,
//! tenant id and class, and request counts by class and a latency histogram per tenant id,
//! rendered in the Prometheus text format at `GET /metrics` (which needs the admin key or the
//! metrics token: see `server`). Tenants are labelled by id only, and at most
//! [`MAX_TENANT_SERIES`] of them: requests of any further tenant count under `_other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Tenant ids labelled at most (as many as `usage` reports storage for); the rest count
/// under [`OTHER_TENANTS`].
pub const MAX_TENANT_SERIES: usize = crate::usage::MAX_TENANTS as usize;

/// The tenant label of requests past [`MAX_TENANT_SERIES`] tenants.
pub const OTHER_TENANTS: &str = "_other";

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of family `name` for one series
    /// (`labels`: its already escaped labels, as `key="value"`).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// One tenant's requests: counts by class (2xx, 3xx, 4xx, 5xx, other) and latency.
#[derive(Default)]
struct TenantSeries {
    classes: [u64; CLASSES.len()],
    latency: Histogram,
}

/// Requests by status, of one method and route.
type StatusCounts = BTreeMap<u16, u64>;

const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    /// Method → route → status → count (nested so that counting a request allocates nothing
    /// once its route has been seen).
    requests: Mutex<BTreeMap<&'static str, BTreeMap<String, StatusCounts>>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// (route, tenant id or `-`, `4xx`/`5xx`) → count.
    errors: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Tenant id (at most [`MAX_TENANT_SERIES`], then [`OTHER_TENANTS`]) → its requests.
    tenants: Mutex<BTreeMap<String, TenantSeries>>,
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
        {
            let mut requests = self.requests.lock();
            let routes = requests.entry(method).or_default();
            *by_name(routes, route).entry(status).or_insert(0) += 1;
        }
        let secs = took.as_secs_f64();
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => 4,
        };
        let tenant = tenant.map(|t| {
            let mut tenants = self.tenants.lock();
            let label = if tenants.contains_key(t) || tenants.len() < MAX_TENANT_SERIES {
                t
            } else {
                OTHER_TENANTS
            };
            let series = by_name(&mut tenants, label);
            series.classes[class] += 1;
            series.latency.observe(secs);
            label
        });
        if matches!(CLASSES[class], "4xx" | "5xx") {
            let key = (route.to_owned(), tenant.unwrap_or("-").to_owned(), CLASSES[class]);
            *self.errors.lock().entry(key).or_insert(0) += 1;
        }
        by_name(&mut self.latency.lock(), route).observe(secs);
    }

    /// The Prometheus text exposition, followed by `extra` (already formatted families).
    pub fn render(&self, in_flight: u64, extra: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP memsilo_http_requests_total HTTP requests by method, route template and status.\n");
        out.push_str("# TYPE memsilo_http_requests_total counter\n");
        let requests = self.requests.lock();
        let by_status = requests
            .iter()
            .flat_map(|(method, routes)| routes.iter().map(move |(route, s)| (method, route, s)));
        for (method, route, statuses) in by_status {
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "memsilo_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        drop(requests);
        out.push_str("# HELP memsilo_http_request_duration_seconds Time to answer a request, by route template.\n");
        out.push_str("# TYPE memsilo_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().iter() {
            h.render(
                &mut out,
                "memsilo_http_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
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
        let tenants = self.tenants.lock();
        out.push_str("# HELP memsilo_tenant_requests_total HTTP requests made with a tenant's keys, by tenant id (_other past the first 1000) and class.\n");
        out.push_str("# TYPE memsilo_tenant_requests_total counter\n");
        for (tenant, series) in tenants.iter() {
            for (class, n) in CLASSES.iter().zip(series.classes) {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "memsilo_tenant_requests_total{{tenant_id=\"{}\",class=\"{class}\"}} {n}",
                        escape(tenant)
                    );
                }
            }
        }
        out.push_str("# HELP memsilo_tenant_request_duration_seconds Time to answer a request made with a tenant's keys, by tenant id.\n");
        out.push_str("# TYPE memsilo_tenant_request_duration_seconds histogram\n");
        for (tenant, series) in tenants.iter() {
            let labels = format!("tenant_id=\"{}\"", escape(tenant));
            series.latency.render(&mut out, "memsilo_tenant_request_duration_seconds", &labels);
        }
        drop(tenants);
        out.push_str("# HELP memsilo_http_requests_in_flight Requests being answered now.\n");
        out.push_str("# TYPE memsilo_http_requests_in_flight gauge\n");
        let _ = writeln!(out, "memsilo_http_requests_in_flight {in_flight}");
        out.push_str(extra);
        out
    }
}

/// The value under `name`, made (with its key copied) only when there is none yet.
fn by_name<'m, V: Default>(map: &'m mut BTreeMap<String, V>, name: &str) -> &'m mut V {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), V::default());
    }
    map.get_mut(name).unwrap_or_else(|| unreachable!("inserted above"))
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

    #[test]
    fn tenants_get_request_counts_and_latency_by_id_up_to_a_bound() {
        let m = Metrics::default();
        m.record("GET", "/v1/x", 200, Duration::from_millis(2), Some("t1"));
        m.record("POST", "/v1/y", 201, Duration::from_millis(2), Some("t1"));
        m.record("GET", "/v1/x", 403, Duration::from_millis(2), Some("t1"));
        m.record("GET", "/v1/x", 503, Duration::from_millis(2), Some("t2"));
        m.record("GET", "/v1/x", 200, Duration::from_millis(2), None);
        let text = m.render(0, "");
        for line in [
            "memsilo_tenant_requests_total{tenant_id=\"t1\",class=\"2xx\"} 2",
            "memsilo_tenant_requests_total{tenant_id=\"t1\",class=\"4xx\"} 1",
            "memsilo_tenant_requests_total{tenant_id=\"t2\",class=\"5xx\"} 1",
            "memsilo_tenant_request_duration_seconds_bucket{tenant_id=\"t1\",le=\"0.0025\"} 3",
            "memsilo_tenant_request_duration_seconds_count{tenant_id=\"t2\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("tenant_id=\"t2\",class=\"2xx\""), "zero counts are left out");
        assert!(
            !text.contains("memsilo_tenant_requests_total{tenant_id=\"-\""),
            "no tenant, no series"
        );

        // Past the bound, further tenants share one series; known ones keep theirs.
        for i in 0..MAX_TENANT_SERIES + 5 {
            m.record("GET", "/v1/x", 200, Duration::from_millis(1), Some(&format!("n{i}")));
        }
        m.record("GET", "/v1/x", 200, Duration::from_millis(1), Some("t1"));
        let text = m.render(0, "");
        let series =
            text.lines().filter(|l| l.starts_with("memsilo_tenant_requests_total{")).count();
        // t1 (2xx, 4xx), t2 (5xx), then n0.. up to the bound, then _other.
        assert_eq!(series, 3 + (MAX_TENANT_SERIES - 2) + 1, "{text}");
        assert!(text.contains(&format!(
            "memsilo_tenant_requests_total{{tenant_id=\"{OTHER_TENANTS}\",class=\"2xx\"}} 7"
        )));
        assert!(text.contains("memsilo_tenant_requests_total{tenant_id=\"t1\",class=\"2xx\"} 3"));
    }
}
