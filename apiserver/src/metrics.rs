//! `/metrics`: request counters in the Prometheus text format, named as the Kubernetes API
//! server names them (`apiserver_request_total{verb,resource,subresource,code}`), so a
//! benchmark or a user can see how many requests of each kind a workload costs.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The labels of one counter.
type Labels = (&'static str, String, String, u16);

/// Request counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Labels, u64>>,
}

/// Kubernetes' verb for a request: LIST and WATCH for collection reads, APPLY for
/// server-side apply, otherwise the HTTP method.
pub fn verb(method: &str, named: bool, watch: bool, apply: bool) -> &'static str {
    match method {
        "GET" if watch => "WATCH",
        "GET" if named => "GET",
        "GET" => "LIST",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" if apply => "APPLY",
        "PATCH" => "PATCH",
        "DELETE" if named => "DELETE",
        "DELETE" => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

impl Metrics {
    /// Count one request.
    pub fn count(&self, verb: &'static str, resource: &str, subresource: &str, code: u16) {
        if let Ok(mut m) = self.requests.lock() {
            // Look up by reference first so the common case allocates nothing.
            if let Some((_, n)) = m.iter_mut().find(|((v, r, s, c), _)| {
                *v == verb && r == resource && s == subresource && *c == code
            }) {
                *n += 1;
                return;
            }
            m.insert((verb, resource.into(), subresource.into(), code), 1);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource, subresource and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((verb, resource, sub, code), n) in m.iter() {
                out.push_str(&format!(
                    "apiserver_request_total{{code=\"{code}\",resource=\"{resource}\",subresource=\"{sub}\",verb=\"{verb}\"}} {n}\n"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        m.count("POST", "pods", "", 201);
        m.count("POST", "pods", "", 201);
        m.count("POST", "pods", "binding", 201);
        let text = m.render();
        assert!(text.contains(
            "apiserver_request_total{code=\"201\",resource=\"pods\",subresource=\"\",verb=\"POST\"} 2\n"
        ));
        assert!(text.contains("subresource=\"binding\",verb=\"POST\"} 1\n"));
        assert_eq!(verb("GET", false, true, false), "WATCH");
        assert_eq!(verb("GET", false, false, false), "LIST");
        assert_eq!(verb("PATCH", true, false, true), "APPLY");
    }
}
