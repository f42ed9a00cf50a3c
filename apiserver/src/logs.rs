//! `GET pods/NAME/log`: found on the pod's node and proxied from its kubelet, streaming when
//! `follow=true`, as the real API server does.

use crate::request::Query;
use crate::routes::Target;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use coxswain_api::resources::NODES;
use coxswain_api::status::ApiError;
use coxswain_api::At;
use serde_json::Value;

/// Proxy a container's log from its kubelet.
pub async fn logs(st: &AppState, t: &Target, name: &str, q: &Query) -> Result<Response, ApiError> {
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = st
        .cache
        .get(t.resource, &ns, name)
        .ok_or_else(|| ApiError::not_found(t.resource, name))?;
    let pod: Value =
        serde_json::from_slice(&pod.bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    let containers: Vec<String> = pod
        .at("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match q.get("container") {
        Some(c) if !c.is_empty() => {
            if !containers.iter().any(|x| x == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let node = pod
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let n = st
        .cache
        .get(&NODES, "", node)
        .ok_or_else(|| ApiError::not_found(&NODES, node))?;
    let n: Value =
        serde_json::from_slice(&n.bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    let base = kubelet_url(&n);
    let mut url = format!("{base}/containerLogs/{ns}/{name}/{container}?");
    for k in [
        "follow",
        "tailLines",
        "timestamps",
        "previous",
        "sinceSeconds",
        "limitBytes",
    ] {
        if let Some(v) = q.get(k) {
            url.push_str(&format!("{k}={v}&"));
        }
    }
    let resp = st.http.get(&url).send().await.map_err(|e| {
        ApiError::internal(format!("error talking to the kubelet of node {node}: {e}"))
    })?;
    let code = resp.status().as_u16();
    if code != 200 {
        let text = resp.text().await.unwrap_or_default();
        return Err(ApiError::bad_request(text));
    }
    // A followed log ends when the server stops, like a watch.
    let mut stopping = st.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = futures::StreamExt::take_until(resp.bytes_stream(), stop);
    let mut out = Response::new(Body::from_stream(stream));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// The base URL of a node's kubelet (`http://IP:PORT`), from its status: the InternalIP
/// address and the kubelet's daemon endpoint port.
pub fn kubelet_url(node: &Value) -> String {
    let ip = node
        .at("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("127.0.0.1");
    let port = node
        .at("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(10250);
    format!("http://{ip}:{port}")
}
