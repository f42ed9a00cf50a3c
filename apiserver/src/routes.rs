//! Parsing a request path into the resource, namespace, name and subresource it addresses.

use coxswain_api::resources::{served, ResourceInfo, NAMESPACES};

/// What a resource path names.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub resource: &'static ResourceInfo,
    /// The group the path addresses: the resource's own, or one it is also served in.
    pub group: &'static str,
    /// The version the path addresses: the resource's own, or one it is also served at
    /// (requests and answers are then converted by `crate::versions`).
    pub version: &'static str,
    /// Namespace from the path (namespaced resources only).
    pub namespace: Option<String>,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `binding`, `log`, `finalize`, `eviction`).
    pub sub: Option<String>,
}

impl Target {
    /// The `apiVersion` the path addresses (`v1`, `apps/v1`, `events.k8s.io/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Why a path did not parse.
#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not a resource path at all.
    NotFound,
}

/// Parse `/api/v1/...` or `/apis/G/V/...`.
pub fn parse(path: &str) -> Result<Target, PathError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(PathError::NotFound),
    };
    let found = |plural: &str| served(group, version, plural).ok_or(PathError::NotFound);
    let find = |plural: &str| found(plural).map(|(r, _, _)| r);
    let t = match rest {
        // `/namespaces/NS/...`: the path grammar names the namespaces resource.
        [seg, ns, plural, tail @ ..]
            if *seg == NAMESPACES.plural && find(plural).is_ok_and(|r| r.namespaced) =>
        {
            let r = find(plural)?;
            match tail {
                [] => (r, Some(*ns), None, None),
                [name] => (r, Some(*ns), Some(*name), None),
                [name, sub] => (r, Some(*ns), Some(*name), Some(*sub)),
                _ => return Err(PathError::NotFound),
            }
        }
        [plural] => (find(plural)?, None, None, None),
        [plural, name] => (find(plural)?, None, Some(*name), None),
        [plural, name, sub] => (find(plural)?, None, Some(*name), Some(*sub)),
        _ => return Err(PathError::NotFound),
    };
    let (r, ns, name, sub) = t;
    if name.is_some() && r.namespaced && ns.is_none() {
        return Err(PathError::NotFound);
    }
    let (_, group, version) = found(r.plural)?;
    Ok(Target {
        resource: r,
        group,
        version,
        namespace: ns.map(str::to_string),
        name: name.filter(|n| !n.is_empty()).map(str::to_string),
        sub: sub.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse("/apis/apps/v1/namespaces/default/deployments/web/scale").unwrap();
        assert_eq!(t.resource.kind, "Deployment");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("scale"));
        let t = parse("/api/v1/namespaces/default").unwrap();
        assert_eq!(t.resource.kind, "Namespace");
        assert_eq!(t.name.as_deref(), Some("default"));
        let t = parse("/api/v1/namespaces/kube-system/finalize").unwrap();
        assert_eq!(t.sub.as_deref(), Some("finalize"));
        let t = parse("/api/v1/pods").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(parse("/api/v1/widgets").is_err());
        assert!(parse("/api/v1/pods/x").is_err());
        assert!(parse("/apis/apps/v2/deployments").is_err());
        let t = parse("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers").unwrap();
        assert_eq!((t.resource.version, t.version), ("v2", "v1"));
        let t = parse("/apis/events.k8s.io/v1/namespaces/default/events").unwrap();
        assert_eq!(
            (t.resource.group, t.group, t.api_version()),
            ("", "events.k8s.io", "events.k8s.io/v1".into())
        );
    }
}
