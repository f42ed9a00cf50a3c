//! What a simulated container does: [`Behaviour`] (pull time or failure, start time, exit
//! after a time with a code, readiness, liveness failure, time to stop, log lines) and where
//! it comes from, most specific last: the kubelet's defaults, the first matching image rule
//! of `--runtime-config FILE`, the container's own `command`/`args` when they are a simple
//! shell script (`echo`, `sleep`, `exit`, `true`, `false`), and the pod annotation
//! `runtime.coxswain.dev/<container>`. Also what a running container uses ([`Usage`]: CPU and
//! memory, a constant or a ramp since it started), which the Summary API reports.

use serde::Deserialize;

/// The pod annotation prefix that scripts one container: `runtime.coxswain.dev/<container>`.
pub const ANNOTATION_PREFIX: &str = "runtime.coxswain.dev/";

/// One container's simulated behaviour; unset fields fall through to less specific sources.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Behaviour {
    /// How long pulling the image takes (first pull on a node).
    pub pull_ms: Option<u64>,
    /// The pull fails with this message (ErrImagePull, then ImagePullBackOff).
    pub pull_error: Option<String>,
    /// How long from create to running.
    pub start_ms: Option<u64>,
    /// The process exits this long after it started (unset: runs until stopped).
    pub exit_after_ms: Option<u64>,
    /// Its exit code (default 0).
    pub exit_code: Option<i32>,
    /// The readiness probe first succeeds this long after start.
    pub ready_after_ms: Option<u64>,
    /// The readiness probe never succeeds.
    pub never_ready: Option<bool>,
    /// The liveness probe fails from this long after start.
    pub unhealthy_after_ms: Option<u64>,
    /// How long the process takes to exit after SIGTERM.
    pub stop_ms: Option<u64>,
    /// Lines it prints when it starts.
    pub logs: Option<Vec<String>>,
    /// CPU it uses while running (`250m`, or a ramp).
    pub cpu: Option<Usage>,
    /// Memory (working set) it uses while running (`64Mi`, or a ramp).
    pub memory: Option<Usage>,
}

/// A quantity as YAML gives it: `250m`, `64Mi`, or a bare number.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount(pub String);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Amount(s)),
            serde_yaml::Value::Number(n) => Ok(Amount(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a quantity, got {other:?}"
            ))),
        }
    }
}

/// What a running container uses of one resource: a constant, or a linear ramp from `from`
/// at its start to `to` after `overMs`, then `to`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Usage {
    /// Always this much.
    Constant(Amount),
    /// From `from` to `to` over `overMs` after the container started.
    #[serde(rename_all = "camelCase")]
    Ramp {
        /// At the start.
        from: Amount,
        /// From `overMs` on.
        to: Amount,
        /// How long the ramp takes.
        over_ms: u64,
    },
}

impl Usage {
    /// The amount `elapsed_ms` after the container started, in the unit `parse` gives
    /// (`None`: a quantity that does not parse).
    pub fn at(&self, elapsed_ms: u64, parse: fn(&str) -> Option<i64>) -> Option<i64> {
        match self {
            Usage::Constant(a) => parse(&a.0).map(|v| v.max(0)),
            Usage::Ramp { from, to, over_ms } => {
                let (a, b) = (parse(&from.0)?.max(0), parse(&to.0)?.max(0));
                if elapsed_ms >= *over_ms {
                    return Some(b);
                }
                let f = elapsed_ms as f64 / (*over_ms).max(1) as f64;
                Some(a + ((b - a) as f64 * f).round() as i64)
            }
        }
    }
}

/// CPU in nanocores (`250m` -> 250,000,000).
pub fn nanocores(q: &str) -> Option<i64> {
    coxswain_api::quantity::cpu_millis(q).map(|m| m.saturating_mul(1_000_000))
}

/// Memory in bytes.
pub fn memory_bytes(q: &str) -> Option<i64> {
    coxswain_api::quantity::bytes(q)
}

impl Behaviour {
    /// Whether its usage quantities parse.
    pub fn check(&self) -> Result<(), String> {
        for (what, u, parse) in [
            ("cpu", &self.cpu, nanocores as fn(&str) -> Option<i64>),
            ("memory", &self.memory, memory_bytes),
        ] {
            if let Some(u) = u {
                if u.at(0, parse).is_none() {
                    return Err(format!("{what}: {u:?} is not a quantity"));
                }
            }
        }
        Ok(())
    }
}

macro_rules! overlay_fields {
    ($base:ident, $top:ident, $($f:ident),*) => {
        Behaviour { $($f: $top.$f.clone().or_else(|| $base.$f.clone())),* }
    };
}

impl Behaviour {
    /// `top`'s set fields over `self`'s.
    pub fn overlay(&self, top: &Behaviour) -> Behaviour {
        overlay_fields!(
            self,
            top,
            pull_ms,
            pull_error,
            start_ms,
            exit_after_ms,
            exit_code,
            ready_after_ms,
            never_ready,
            unhealthy_after_ms,
            stop_ms,
            logs,
            cpu,
            memory
        )
    }
}

/// One rule of the runtime config: images matching `image` (`*` matches any run of
/// characters) behave as `behaviour` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRule {
    /// The image pattern, e.g. `busybox*` or `registry.example/*:broken`.
    pub image: String,
    /// What containers of those images do.
    #[serde(flatten)]
    pub behaviour: Behaviour,
}

/// The `--runtime-config` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Behaviour of every container unless something more specific says otherwise.
    #[serde(default)]
    pub defaults: Behaviour,
    /// Per-image rules; the first match applies.
    #[serde(default)]
    pub images: Vec<ImageRule>,
}

/// The runtime config every node of the process reads; replaced when its file changes.
pub type SharedConfig = std::sync::Arc<std::sync::RwLock<std::sync::Arc<RuntimeConfig>>>;

/// The config in force now.
pub fn current(c: &SharedConfig) -> std::sync::Arc<RuntimeConfig> {
    c.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `*`-glob match.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl RuntimeConfig {
    /// Parse a config file's text (YAML or JSON).
    pub fn parse(text: &str) -> Result<RuntimeConfig, String> {
        let c: RuntimeConfig = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        c.defaults.check()?;
        for rule in &c.images {
            rule.behaviour
                .check()
                .map_err(|e| format!("image {}: {e}", rule.image))?;
        }
        Ok(c)
    }

    /// The behaviour for a container, from every source. In a pod that runs to completion
    /// (`batch`: restartPolicy Never or OnFailure), a command nothing scripts (`perl -e ...`)
    /// runs for a second and exits 0, as such programs do; one that plainly never ends
    /// (`sleep infinity`, a `while` loop, `tail -f`), or an image's own entrypoint (no
    /// command: it may be a server), still runs until stopped.
    pub fn resolve(
        &self,
        image: &str,
        command: &[String],
        annotation: Option<&str>,
        batch: bool,
    ) -> Result<Behaviour, String> {
        let mut b = self.defaults.clone();
        if let Some(rule) = self.images.iter().find(|r| glob(&r.image, image)) {
            b = b.overlay(&rule.behaviour);
        }
        if let Some(s) = script(command) {
            b = b.overlay(&s);
        }
        if let Some(text) = annotation {
            let a: Behaviour = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
            a.check()?;
            b = b.overlay(&a);
        }
        let text = command.join(" ");
        let endless = ["infinity", "while ", "tail -f"]
            .iter()
            .any(|w| text.contains(w));
        // Only a command the pod names: an image's own entrypoint may be a server.
        if batch && !command.is_empty() && b.exit_after_ms.is_none() && !endless {
            b.exit_after_ms = Some(1000);
            b.exit_code = b.exit_code.or(Some(0));
        }
        Ok(b)
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

/// What a container's `command` + `args` do, when they are a simple script: `echo` prints,
/// `sleep N` waits, `exit N`/`false` ends with a code, and reaching the end exits 0. Anything
/// else (a server, `sleep infinity`, a loop) keeps the lines so far and runs until stopped.
pub fn script(argv: &[String]) -> Option<Behaviour> {
    let first = argv.first()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    let text = if matches!(base, "sh" | "bash" | "ash" | "dash") && argv.len() >= 3 {
        if argv[1] != "-c" {
            return None;
        }
        argv[2].clone()
    } else {
        std::iter::once(base.to_string())
            .chain(argv[1..].iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut logs = Vec::new();
    let mut ms: u64 = 0;
    let statements = text
        .split(['\n', ';'])
        .flat_map(|s| s.split("&&"))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let forever = |logs: Vec<String>| {
        Some(Behaviour {
            logs: Some(logs),
            ..Default::default()
        })
    };
    for st in statements {
        let (cmd, rest) = st.split_once(char::is_whitespace).unwrap_or((st, ""));
        match cmd {
            "echo" => logs.push(unquote(rest)),
            "true" | ":" => {}
            "sleep" => match unquote(rest).parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => ms += (s * 1000.0) as u64,
                _ => return forever(logs),
            },
            "exit" | "false" => {
                let code = if cmd == "false" {
                    1
                } else {
                    unquote(rest).parse().unwrap_or(0)
                };
                return Some(Behaviour {
                    logs: Some(logs),
                    exit_after_ms: Some(ms),
                    exit_code: Some(code),
                    ..Default::default()
                });
            }
            _ => return forever(logs),
        }
    }
    Some(Behaviour {
        logs: Some(logs),
        exit_after_ms: Some(ms),
        exit_code: Some(0),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scripts() {
        let b = script(&argv(&["sh", "-c", "echo hello; sleep 1.5 && exit 3"])).unwrap();
        assert_eq!(b.logs, Some(vec!["hello".to_string()]));
        assert_eq!((b.exit_after_ms, b.exit_code), (Some(1500), Some(3)));
        let b = script(&argv(&["echo", "hi", "there"])).unwrap();
        assert_eq!((b.exit_after_ms, b.exit_code), (Some(0), Some(0)));
        assert_eq!(b.logs, Some(vec!["hi there".to_string()]));
        let b = script(&argv(&[
            "/bin/sh",
            "-c",
            "echo start; nginx -g 'daemon off;'",
        ]))
        .unwrap();
        assert_eq!(b.exit_after_ms, None, "a server runs until stopped");
        assert_eq!(b.logs, Some(vec!["start".to_string()]));
        assert_eq!(
            script(&argv(&["sleep", "infinity"])).unwrap().exit_after_ms,
            None
        );
        assert_eq!(script(&[]), None);
    }

    #[test]
    fn sources_overlay_in_order() {
        let cfg = RuntimeConfig::parse(
            "defaults: {pullMs: 400}\nimages:\n- image: 'busybox*'\n  exitAfterMs: 100\n  exitCode: 2\n- image: '*'\n  pullMs: 1\n",
        )
        .unwrap();
        let b = cfg.resolve("busybox:1.36", &[], None, false).unwrap();
        assert_eq!((b.pull_ms, b.exit_code), (Some(400), Some(2)));
        let b = cfg.resolve("nginx", &[], None, false).unwrap();
        assert_eq!((b.pull_ms, b.exit_after_ms), (Some(1), None));
        let b = cfg
            .resolve(
                "busybox",
                &argv(&["exit", "5"]),
                Some("{exitCode: 7}"),
                false,
            )
            .unwrap();
        assert_eq!((b.exit_after_ms, b.exit_code), (Some(0), Some(7)));
        assert!(cfg.resolve("x", &[], Some("{bogus: 1}"), false).is_err());
        // In a pod that runs to completion an unscripted program ends; an endless one not.
        let perl = argv(&["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]);
        let b = cfg.resolve("perl", &perl, None, true).unwrap();
        assert_eq!((b.exit_after_ms, b.exit_code), (Some(1000), Some(0)));
        assert_eq!(
            cfg.resolve("perl", &perl, None, false)
                .unwrap()
                .exit_after_ms,
            None
        );
        let endless = argv(&["sh", "-c", "while true; do date; sleep 1; done"]);
        assert_eq!(
            cfg.resolve("alpine", &endless, None, true)
                .unwrap()
                .exit_after_ms,
            None
        );
        assert!(glob(
            "registry.example/*:broken",
            "registry.example/a/b:broken"
        ));
        assert!(!glob("busybox*", "nginx"));
    }

    #[test]
    fn usage_constant_and_ramp() {
        let cfg = RuntimeConfig::parse(
            "images:\n- image: 'load*'\n  cpu: 300m\n  memory: {from: 10Mi, to: 30Mi, overMs: 1000}\n",
        )
        .unwrap();
        let b = cfg.resolve("load:1", &[], None, false).unwrap();
        let cpu = b.cpu.unwrap();
        assert_eq!(cpu.at(0, nanocores), Some(300_000_000));
        let mem = b.memory.unwrap();
        assert_eq!(mem.at(0, memory_bytes), Some(10 << 20));
        assert_eq!(mem.at(500, memory_bytes), Some(20 << 20));
        assert_eq!(mem.at(5000, memory_bytes), Some(30 << 20));
        let b = cfg.resolve("load", &[], Some("{cpu: 1}"), false).unwrap();
        assert_eq!(b.cpu.unwrap().at(0, nanocores), Some(1_000_000_000));
        assert!(cfg
            .resolve("load", &[], Some("{cpu: lots}"), false)
            .is_err());
        assert!(RuntimeConfig::parse("defaults: {memory: [1]}").is_err());
        assert!(RuntimeConfig::parse("defaults: {memory: 12Qi}").is_err());
    }
}
