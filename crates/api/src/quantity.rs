//! Resource quantities: `250m` cpu as millicores, `128Mi` memory as bytes.

/// Parse a cpu quantity into millicores (`1` -> 1000, `250m` -> 250, `0.5` -> 500).
pub fn cpu_millis(q: &str) -> Option<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<i64>().ok();
    }
    let v: f64 = q.parse().ok()?;
    Some((v * 1000.0).round() as i64)
}

/// Parse a cpu quantity into nanocores (`123456789n`, `12u`, `250m`, `1.5`).
pub fn cpu_nanos(q: &str) -> Option<i64> {
    let q = q.trim();
    for (suffix, mult) in [("n", 1.0), ("u", 1e3), ("m", 1e6)] {
        if let Some(v) = q.strip_suffix(suffix) {
            let v: f64 = v.parse().ok()?;
            return Some((v * mult).round() as i64);
        }
    }
    let v: f64 = q.parse().ok()?;
    Some((v * 1e9).round() as i64)
}

/// Parse a memory quantity into bytes (`128Mi`, `1G`, `1e3`, `512`).
pub fn bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (s, mult) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            let v: f64 = n.parse().ok()?;
            return Some((v * mult).ceil() as i64);
        }
    }
    q.parse::<f64>().ok().map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(bytes("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(bytes("abc"), None);
        assert_eq!(cpu_nanos("123456789n"), Some(123_456_789));
        assert_eq!(cpu_nanos("250m"), Some(250_000_000));
        assert_eq!(cpu_nanos("2"), Some(2_000_000_000));
        assert_eq!(cpu_nanos("x"), None);
    }
}
