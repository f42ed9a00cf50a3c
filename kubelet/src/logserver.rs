//! The kubelet's HTTP endpoint: `GET /containerLogs/{ns}/{pod}/{container}` with `follow`,
//! `tailLines` and `timestamps`, which the API server proxies `pods/log` to, and the Summary
//! API of [`crate::stats`].

use crate::pods::PodManager;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn render(lines: &[(chrono::DateTime<chrono::Utc>, String)], timestamps: bool) -> String {
    lines
        .iter()
        .map(|(t, l)| {
            if timestamps {
                format!(
                    "{} {l}\n",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// The simulated nodes of this process, by node name.
pub type Nodes = Arc<HashMap<String, Arc<PodManager>>>;

async fn container_logs(
    State(nodes): State<Nodes>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = format!("{ns}/{pod}");
    let previous = q.get("previous").is_some_and(|v| v == "true");
    let found = nodes.values().find_map(|pm| {
        pm.container_id(&key, &container, previous)
            .map(|id| (pm, id))
    });
    let Some((pm, id)) = found else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        return (StatusCode::BAD_REQUEST, msg).into_response();
    };
    let timestamps = q.get("timestamps").is_some_and(|v| v == "true");
    let follow = q.get("follow").is_some_and(|v| v == "true");
    let mut lines = pm.runtime.log_lines(&id, chrono::Utc::now());
    if let Some(n) = q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    let first = render(&lines, timestamps);
    if !follow {
        return first.into_response();
    }
    let rt = pm.runtime.clone();
    let seen = pm.runtime.log_lines(&id, chrono::Utc::now()).len();
    let stream = futures::stream::unfold((Some(first), seen), move |(first, mut seen)| {
        let rt = rt.clone();
        let id = id.clone();
        async move {
            if let Some(f) = first {
                return Some((Ok::<_, std::convert::Infallible>(f), (None, seen)));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                rt.inspect(&id)?;
                let all = rt.log_lines(&id, chrono::Utc::now());
                if all.len() > seen {
                    let out = render(&all[seen..], timestamps);
                    seen = all.len();
                    return Some((Ok(out), (None, seen)));
                }
            }
        }
    });
    Body::from_stream(stream).into_response()
}

/// The kubelet's router.
pub fn router(nodes: Nodes) -> Router {
    Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/stats/summary", get(crate::stats::node_summary))
        .route("/stats/nodes", get(crate::stats::all_summaries))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(nodes)
}
