//! Decoding Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
//! JSON, for the kinds we serve that kubectl's generators send that way
//! (`kubectl create namespace`, `kubectl create deployment`, `kubectl create job`,
//! `kubectl create cronjob`).
//!
//! The envelope is the 4-byte magic `k8s\0` and a `runtime.Unknown` whose `raw` field holds
//! the object. Messages are decoded with a small schema per message type (field number ->
//! JSON name and kind), written from the field numbers of Kubernetes' `generated.proto`. No
//! `protoc` and no generated code are needed. A field the schema does not know is an error,
//! never silently dropped.

use serde_json::{json, Map, Value};

/// A body that could not be decoded; the message says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtoError(pub String);

/// How one field is decoded.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Msg(&'static [Field]),
    /// `map<string,string>`.
    MapStr,
    /// `map<string,Quantity>`.
    MapQuantity,
    /// `map<string,bytes>`, base64 in JSON.
    MapBytes,
    /// `metav1.Time` -> RFC 3339.
    Time,
    /// `intstr.IntOrString`.
    IntOrString,
    /// A message embedded inline (`json:",inline"`): its fields join the parent's.
    Inline(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// A Go pointer field: present means set, so a zero value is kept.
    ptr: bool,
}

/// A plain field. Go always writes these, zero values included; like JSON's `omitempty`, a
/// zero value (`""`, `0`, `false`) is dropped.
const fn f(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
        ptr: false,
    }
}

/// A pointer field (`*int32`, `*bool`): written only when set, zero kept.
const fn p(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
        ptr: true,
    }
}

const fn r(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: true,
        ptr: false,
    }
}

use Kind::*;

const OWNER_REF: &[Field] = &[
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];
const OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg(OWNER_REF)),
    r(14, "finalizers", Str),
];
const SELECTOR_REQ: &[Field] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", MapStr),
    r(2, "matchExpressions", Msg(SELECTOR_REQ)),
];
const PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "hostPort", Int),
    f(3, "containerPort", Int),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];
const ENV: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
const RESOURCES: &[Field] = &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)];
const CONTAINER: &[Field] = &[
    f(1, "name", Str),
    f(2, "image", Str),
    r(3, "command", Str),
    r(4, "args", Str),
    f(5, "workingDir", Str),
    r(6, "ports", Msg(PORT)),
    r(7, "env", Msg(ENV)),
    f(8, "resources", Msg(RESOURCES)),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    f(20, "terminationMessagePolicy", Str),
];
const TOLERATION: &[Field] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    p(5, "tolerationSeconds", Int),
];
const POD_SPEC: &[Field] = &[
    r(2, "containers", Msg(CONTAINER)),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", Int),
    p(5, "activeDeadlineSeconds", Int),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", MapStr),
    f(8, "serviceAccountName", Str),
    f(10, "nodeName", Str),
    f(19, "schedulerName", Str),
    r(20, "initContainers", Msg(CONTAINER)),
    r(22, "tolerations", Msg(TOLERATION)),
    f(11, "hostNetwork", Bool),
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    p(25, "priority", Int),
    p(30, "enableServiceLinks", Bool),
];
const POD_TEMPLATE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];
const ROLLING_UPDATE: &[Field] = &[
    f(1, "maxUnavailable", IntOrString),
    f(2, "maxSurge", IntOrString),
];
const STRATEGY: &[Field] = &[
    f(1, "type", Str),
    f(2, "rollingUpdate", Msg(ROLLING_UPDATE)),
];
const DEPLOYMENT_SPEC: &[Field] = &[
    p(1, "replicas", Int),
    f(2, "selector", Msg(LABEL_SELECTOR)),
    f(3, "template", Msg(POD_TEMPLATE)),
    f(4, "strategy", Msg(STRATEGY)),
    f(5, "minReadySeconds", Int),
    p(6, "revisionHistoryLimit", Int),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", Int),
];
/// Status is ignored on create; an empty message is all generators send.
const EMPTY: &[Field] = &[];
const ON_EXIT_CODES: &[Field] = &[
    p(1, "containerName", Str),
    f(2, "operator", Str),
    r(3, "values", Int),
];
const ON_POD_CONDITIONS: &[Field] = &[f(1, "type", Str), f(2, "status", Str)];
const POD_FAILURE_POLICY_RULE: &[Field] = &[
    f(1, "action", Str),
    p(2, "onExitCodes", Msg(ON_EXIT_CODES)),
    r(3, "onPodConditions", Msg(ON_POD_CONDITIONS)),
];
const SUCCESS_POLICY_RULE: &[Field] = &[p(1, "succeededIndexes", Str), p(2, "succeededCount", Int)];
const JOB_SPEC: &[Field] = &[
    p(1, "parallelism", Int),
    p(2, "completions", Int),
    p(3, "activeDeadlineSeconds", Int),
    p(4, "selector", Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Bool),
    f(6, "template", Msg(POD_TEMPLATE)),
    p(7, "backoffLimit", Int),
    p(8, "ttlSecondsAfterFinished", Int),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
    p(
        11,
        "podFailurePolicy",
        Msg(&[r(1, "rules", Msg(POD_FAILURE_POLICY_RULE))]),
    ),
    p(12, "backoffLimitPerIndex", Int),
    p(13, "maxFailedIndexes", Int),
    p(14, "podReplacementPolicy", Str),
    p(15, "managedBy", Str),
    p(
        16,
        "successPolicy",
        Msg(&[r(1, "rules", Msg(SUCCESS_POLICY_RULE))]),
    ),
];
const JOB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(JOB_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const CRONJOB_SPEC: &[Field] = &[
    f(1, "schedule", Str),
    p(2, "startingDeadlineSeconds", Int),
    f(3, "concurrencyPolicy", Str),
    p(4, "suspend", Bool),
    f(
        5,
        "jobTemplate",
        Msg(&[
            f(1, "metadata", Msg(OBJECT_META)),
            f(2, "spec", Msg(JOB_SPEC)),
        ]),
    ),
    p(6, "successfulJobsHistoryLimit", Int),
    p(7, "failedJobsHistoryLimit", Int),
    p(8, "timeZone", Str),
];
const PDB_SPEC: &[Field] = &[
    p(1, "minAvailable", IntOrString),
    p(2, "selector", Msg(LABEL_SELECTOR)),
    p(3, "maxUnavailable", IntOrString),
    p(4, "unhealthyPodEvictionPolicy", Str),
];
const PDB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(PDB_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const SERVICE_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    f(3, "port", Int),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", Int),
    p(6, "appProtocol", Str),
];
const SERVICE_SPEC: &[Field] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", MapStr),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    r(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    r(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", Int),
    f(13, "publishNotReadyAddresses", Bool),
    p(17, "ipFamilyPolicy", Str),
    r(18, "clusterIPs", Str),
    r(19, "ipFamilies", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];
const SERVICE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(SERVICE_SPEC)),
    f(3, "status", Msg(&[f(1, "loadBalancer", Msg(EMPTY))])),
];
const SECRET: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapBytes),
    f(3, "type", Str),
    f(4, "stringData", MapStr),
    p(5, "immutable", Bool),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    p(4, "automountServiceAccountToken", Bool),
];
const POLICY_RULE: &[Field] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];
const ROLE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
    p(
        3,
        "aggregationRule",
        Msg(&[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))]),
    ),
];
const SUBJECT: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiGroup", Str),
    f(3, "name", Str),
    f(4, "namespace", Str),
];
const ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "subjects", Msg(SUBJECT)),
    f(
        3,
        "roleRef",
        Msg(&[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)]),
    ),
];
const CROSS_VERSION_OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Str),
    f(2, "name", Str),
    f(3, "apiVersion", Str),
];
const HPA_V1_SPEC: &[Field] = &[
    f(1, "scaleTargetRef", Msg(CROSS_VERSION_OBJECT_REFERENCE)),
    p(2, "minReplicas", Int),
    f(3, "maxReplicas", Int),
    p(4, "targetCPUUtilizationPercentage", Int),
];
const HPA_V1: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(HPA_V1_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const CRONJOB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(CRONJOB_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(DEPLOYMENT_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(&[r(1, "finalizers", Str)])),
    f(3, "status", Msg(EMPTY)),
];
const POD: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
    f(3, "status", Msg(EMPTY)),
];
const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapStr),
    f(3, "binaryData", MapBytes),
    p(4, "immutable", Bool),
];
const SCOPED_REQ: &[Field] = &[
    f(1, "scopeName", Str),
    f(2, "operator", Str),
    r(3, "values", Str),
];
const QUOTA_SPEC: &[Field] = &[
    f(1, "hard", MapQuantity),
    r(2, "scopes", Str),
    p(
        3,
        "scopeSelector",
        Msg(&[r(1, "matchExpressions", Msg(SCOPED_REQ))]),
    ),
];
const RESOURCE_QUOTA: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(QUOTA_SPEC)),
];
const PRIORITY_CLASS: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    p(2, "value", Int),
    f(3, "globalDefault", Bool),
    f(4, "description", Str),
    p(5, "preemptionPolicy", Str),
];
const SERVICE_BACKEND_PORT: &[Field] = &[f(1, "name", Str), f(2, "number", Int)];
const INGRESS_SERVICE_BACKEND: &[Field] =
    &[f(1, "name", Str), f(2, "port", Msg(SERVICE_BACKEND_PORT))];
const TYPED_LOCAL_REF: &[Field] = &[p(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];
const INGRESS_BACKEND: &[Field] = &[
    p(4, "service", Msg(INGRESS_SERVICE_BACKEND)),
    p(3, "resource", Msg(TYPED_LOCAL_REF)),
];
const HTTP_PATH: &[Field] = &[
    f(1, "path", Str),
    p(3, "pathType", Str),
    f(2, "backend", Msg(INGRESS_BACKEND)),
];
const INGRESS_RULE_VALUE: &[Field] = &[p(1, "http", Msg(&[r(1, "paths", Msg(HTTP_PATH))]))];
const INGRESS_RULE: &[Field] = &[
    f(1, "host", Str),
    f(2, "ingressRuleValue", Inline(INGRESS_RULE_VALUE)),
];
const INGRESS_TLS: &[Field] = &[r(1, "hosts", Str), f(2, "secretName", Str)];
const INGRESS_SPEC: &[Field] = &[
    p(4, "ingressClassName", Str),
    p(1, "defaultBackend", Msg(INGRESS_BACKEND)),
    r(2, "tls", Msg(INGRESS_TLS)),
    r(3, "rules", Msg(INGRESS_RULE)),
];
const INGRESS: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(INGRESS_SPEC)),
    // Go always writes the (empty) status: `{loadBalancer: {}}`.
    f(3, "status", Msg(&[f(1, "loadBalancer", Msg(EMPTY))])),
];
const TYPE_META: &[Field] = &[f(1, "apiVersion", Str), f(2, "kind", Str)];

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| ProtoError("truncated varint".into()))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError("varint too long".into()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = self.varint()? as usize;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| ProtoError("truncated field".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), ProtoError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(ProtoError(format!("unsupported wire type {w}"))),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ProtoError> {
        if self.pos + n > self.buf.len() {
            return Err(ProtoError("truncated field".into()));
        }
        self.pos += n;
        Ok(())
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn utf8(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError("string is not UTF-8".into()))
}

/// Decode `(key, value)` map entries.
fn map_entry(b: &[u8], kind: Kind) -> Result<(String, String), ProtoError> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), String::new());
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) if matches!(kind, MapBytes) => v = base64(r.bytes()?),
            (2, 2) if matches!(kind, MapQuantity) => {
                let q = decode_msg(r.bytes()?, &[f(1, "string", Str)], "Quantity")?;
                v = q["string"].as_str().unwrap_or_default().to_string();
            }
            (2, 2) => v = utf8(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn decode_msg(buf: &[u8], schema: &[Field], what: &str) -> Result<Value, ProtoError> {
    let mut out = Map::new();
    let mut r = Reader { buf, pos: 0 };
    while !r.done() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some(fd) = schema.iter().find(|x| x.num == num) else {
            // Go writes every non-pointer field; an unknown one holding its zero value carries
            // nothing. Anything else would be lost, so it is refused.
            let empty = match wire {
                0 => r.varint()? == 0,
                2 => r.bytes()?.is_empty(),
                w => {
                    r.skip(w)?;
                    false
                }
            };
            if empty {
                continue;
            }
            return Err(ProtoError(format!(
                "field {num} of {what} is not supported in protobuf bodies; send JSON (e.g. kubectl create -f)"
            )));
        };
        let v = match (fd.kind, wire) {
            (Str, 2) => json!(utf8(r.bytes()?)?),
            (Int, 0) => json!(r.varint()? as i64),
            (Bool, 0) => json!(r.varint()? != 0),
            (Msg(s), 2) => decode_msg(r.bytes()?, s, fd.name)?,
            (Inline(s), 2) => {
                if let Value::Object(m) = decode_msg(r.bytes()?, s, fd.name)? {
                    out.extend(m);
                }
                continue;
            }
            (MapStr | MapQuantity | MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, fd.kind)?;
                let m = out
                    .entry(fd.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, json!(v));
                }
                continue;
            }
            (Time, 2) => {
                let t = decode_msg(
                    r.bytes()?,
                    &[f(1, "seconds", Int), f(2, "nanos", Int)],
                    "Time",
                )?;
                let secs = t["seconds"].as_i64().unwrap_or(0);
                if secs <= 0 {
                    Value::Null
                } else {
                    json!(chrono_free_rfc3339(secs))
                }
            }
            (IntOrString, 2) => {
                let v = decode_msg(
                    r.bytes()?,
                    &[f(1, "type", Int), f(2, "intVal", Int), f(3, "strVal", Str)],
                    "IntOrString",
                )?;
                if v["type"].as_i64() == Some(1) {
                    v["strVal"].clone()
                } else {
                    json!(v["intVal"].as_i64().unwrap_or(0))
                }
            }
            (_, w) => {
                return Err(ProtoError(format!(
                    "field {} of {what} has unexpected wire type {w}",
                    fd.name
                )))
            }
        };
        let zero = matches!(&v, Value::String(s) if s.is_empty())
            || v == json!(0)
            || v == json!(false)
            || v.is_null();
        if zero && !fd.ptr && !fd.repeated {
            continue;
        }
        if fd.repeated {
            let e = out
                .entry(fd.name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = e {
                a.push(v);
            }
        } else {
            out.insert(fd.name.to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

/// Standard base64 with padding (how JSON carries `[]byte`).
fn base64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (*x as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Seconds since the epoch as RFC 3339 UTC (days-from-civil arithmetic; no date crate).
fn chrono_free_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The schema of one top-level message (a kind's `generated.proto` message).
#[derive(Clone, Copy)]
pub struct Schema(&'static [Field]);

/// `apps/v1` Deployment.
pub const DEPLOYMENT_SCHEMA: Schema = Schema(DEPLOYMENT);
/// `v1` Namespace.
pub const NAMESPACE_SCHEMA: Schema = Schema(NAMESPACE);
/// `v1` Pod.
pub const POD_SCHEMA: Schema = Schema(POD);
/// `v1` ConfigMap.
pub const CONFIG_MAP_SCHEMA: Schema = Schema(CONFIG_MAP);
/// `batch/v1` Job.
pub const JOB_SCHEMA: Schema = Schema(JOB);
/// `batch/v1` CronJob.
pub const CRONJOB_SCHEMA: Schema = Schema(CRONJOB);
/// `policy/v1` PodDisruptionBudget.
pub const PDB_SCHEMA: Schema = Schema(PDB);
/// v1 `Secret` (`kubectl create secret generic|tls|docker-registry`).
pub const SECRET_SCHEMA: Schema = Schema(SECRET);
/// v1 `ServiceAccount` (`kubectl create serviceaccount`).
pub const SERVICE_ACCOUNT_SCHEMA: Schema = Schema(SERVICE_ACCOUNT);
/// rbac/v1 `Role` and `ClusterRole` (`kubectl create role|clusterrole`).
pub const ROLE_SCHEMA: Schema = Schema(ROLE);
/// rbac/v1 `RoleBinding` and `ClusterRoleBinding` (`kubectl create rolebinding|clusterrolebinding`).
pub const ROLE_BINDING_SCHEMA: Schema = Schema(ROLE_BINDING);
/// v1 `Service` (`kubectl create service`).
pub const SERVICE_SCHEMA: Schema = Schema(SERVICE);
/// v1 `ResourceQuota` (`kubectl create quota`).
pub const RESOURCE_QUOTA_SCHEMA: Schema = Schema(RESOURCE_QUOTA);
/// scheduling.k8s.io/v1 `PriorityClass` (`kubectl create priorityclass`).
pub const PRIORITY_CLASS_SCHEMA: Schema = Schema(PRIORITY_CLASS);
/// networking.k8s.io/v1 `Ingress` (`kubectl create ingress`).
pub const INGRESS_SCHEMA: Schema = Schema(INGRESS);
/// autoscaling/v1 `HorizontalPodAutoscaler` (`kubectl autoscale`).
pub const HPA_V1_SCHEMA: Schema = Schema(HPA_V1);

/// Decode a protobuf request body into a JSON object with `apiVersion` and `kind`;
/// `schema_of(apiVersion, kind)` names the message schema of the kinds that have one.
pub fn decode(
    body: &[u8],
    schema_of: impl Fn(&str, &str) -> Option<Schema>,
) -> Result<Value, ProtoError> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| ProtoError("missing the k8s protobuf magic prefix".into()))?;
    let mut r = Reader { buf: rest, pos: 0 };
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => type_meta = decode_msg(r.bytes()?, TYPE_META, "TypeMeta")?,
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let api_version = type_meta["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = type_meta["kind"].as_str().unwrap_or_default().to_string();
    let Some(Schema(schema)) = schema_of(&api_version, &kind) else {
        return Err(ProtoError(format!(
            "protobuf bodies of {api_version} {kind} are not supported; send JSON"
        )));
    };
    let mut v = decode_msg(raw, schema, &kind)?;
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn ld(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        let mut meta = Vec::new();
        ld(1, b"shop", &mut meta);
        let mut entry = Vec::new();
        ld(1, b"team", &mut entry);
        ld(2, b"a", &mut entry);
        ld(11, &entry, &mut meta);
        let mut ns = Vec::new();
        ld(1, &meta, &mut ns);
        ld(2, &[], &mut ns);
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"Namespace", &mut tm);
        let mut body = b"k8s\0".to_vec();
        ld(1, &tm, &mut body);
        ld(2, &ns, &mut body);
        let ns_only =
            |av: &str, k: &str| (av == "v1" && k == "Namespace").then_some(NAMESPACE_SCHEMA);
        let v = decode(&body, ns_only).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "shop", "labels": {"team": "a"}}, "spec": {}})
        );
        assert!(decode(b"nope", ns_only).is_err());
        assert!(decode(&body[..body.len() - 2], ns_only).is_err());
        assert!(decode(&body, |_, _| None).is_err());
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn dates() {
        assert_eq!(chrono_free_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(chrono_free_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
