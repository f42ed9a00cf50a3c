//! CronJob schedules: the standard five-field cron grammar Kubernetes accepts (robfig/cron's
//! `ParseStandard`: minute, hour, day of month, month, day of week; `*`, `?`, lists, ranges,
//! steps, month and weekday names; `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly` and `@every <duration>`), and the next time a schedule fires after a
//! given instant in a time zone (IANA names, through chrono-tz).

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
pub use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields, each a bit set of the values that match.
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// Day of month or day of week was `*`/`?`: both must match (else either may).
        day_star: bool,
    },
    /// `@every <duration>`: a fixed interval, whole seconds.
    Every(Duration),
}

/// Why a schedule does not parse (robfig/cron's wording where it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Schedule {
    /// Parse a schedule as Kubernetes does.
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(CronError("empty spec string".into()));
        }
        if spec.contains("TZ") {
            return Err(CronError(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into(),
            ));
        }
        if let Some(macro_) = spec.strip_prefix('@') {
            let fields = match macro_ {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                m if m.starts_with("every ") => {
                    let d = parse_go_duration(m["every ".len()..].trim())
                        .ok_or_else(|| CronError(format!("failed to parse duration {spec}")))?;
                    // Under a second is a second; parts of a second are dropped.
                    let secs = d.num_seconds().max(1);
                    return Ok(Schedule::Every(Duration::seconds(secs)));
                }
                _ => return Err(CronError(format!("unrecognized descriptor: {spec}"))),
            };
            return Schedule::parse(fields);
        }
        let f: Vec<&str> = spec.split_whitespace().collect();
        if f.len() != 5 {
            return Err(CronError(format!(
                "expected exactly 5 fields, found {}: [{}]",
                f.len(),
                f.join(" ")
            )));
        }
        let (dom, dom_star) = field(f[2], &DOM)?;
        let (dow, dow_star) = field(f[4], &DOW)?;
        Ok(Schedule::Fields {
            minute: field(f[0], &MINUTE)?.0,
            hour: field(f[1], &HOUR)?.0,
            dom,
            month: field(f[3], &MONTH)?.0,
            dow,
            day_star: dom_star || dow_star,
        })
    }

    /// The first time after `after` (strictly) the schedule fires, in `tz`; `None` if it
    /// never does within five years (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let (minute, hour, dom, month, dow, day_star) = match self {
            Schedule::Every(d) => {
                let base = after.with_nanosecond(0).unwrap_or(after);
                return Some(base + *d);
            }
            Schedule::Fields {
                minute,
                hour,
                dom,
                month,
                dow,
                day_star,
            } => (*minute, *hour, *dom, *month, *dow, *day_star),
        };
        let has = |set: u64, v: u32| set & (1u64 << v) != 0;
        let local = after.with_timezone(&tz).naive_local();
        let mut t = truncate_minute(local) + Duration::minutes(1);
        let limit = t + Duration::days(5 * 366);
        while t < limit {
            if !has(month, t.month()) {
                t = first_of_next_month(t);
                continue;
            }
            let (dm, dw) = (
                has(dom, t.day()),
                has(dow, t.weekday().num_days_from_sunday()),
            );
            let day_ok = if day_star { dm && dw } else { dm || dw };
            if !day_ok {
                t = (t.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !has(hour, t.hour()) {
                t = truncate_minute(t).with_minute(0)? + Duration::hours(1);
                continue;
            }
            if !has(minute, t.minute()) {
                t += Duration::minutes(1);
                continue;
            }
            // A local time skipped by a DST change does not fire; a repeated one fires at
            // its first instant after `after`.
            let candidates: Vec<DateTime<Utc>> = tz
                .from_local_datetime(&t)
                .earliest()
                .into_iter()
                .chain(tz.from_local_datetime(&t).latest())
                .map(|x| x.with_timezone(&Utc))
                .collect();
            if let Some(x) = candidates.into_iter().find(|x| *x > after) {
                return Some(x);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

fn truncate_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn first_of_next_month(t: NaiveDateTime) -> NaiveDateTime {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(t + Duration::days(31))
}

/// One field: a comma-separated list of ranges; the bit set and whether it was `*`/`?`.
fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let mut bits = 0u64;
    let mut star = false;
    for part in expr.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (b.min, b.max, true)
        } else {
            match range.split_once('-') {
                Some((lo, hi)) => (value(lo, b)?, value(hi, b)?, false),
                None => {
                    let v = value(range, b)?;
                    // `N/step` means N through the maximum.
                    (v, if step.is_some() { b.max } else { v }, false)
                }
            }
        };
        let step = match step {
            None => 1,
            Some(s) => s
                .parse::<u32>()
                .map_err(|_| CronError(format!("failed to parse int from {s}")))?,
        };
        if step == 0 {
            return Err(CronError(format!(
                "step of range should be a positive number: {part}"
            )));
        }
        if start < b.min {
            return Err(CronError(format!(
                "beginning of range ({start}) below minimum ({}): {part}",
                b.min
            )));
        }
        if end > b.max {
            return Err(CronError(format!(
                "end of range ({end}) above maximum ({}): {part}",
                b.max
            )));
        }
        if start > end {
            return Err(CronError(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            )));
        }
        star |= is_star && step == 1;
        let mut v = start;
        while v <= end {
            bits |= 1u64 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok((bits, star))
}

fn value(s: &str, b: &Bounds) -> Result<u32, CronError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + if b.names.len() == 12 { 1 } else { 0 });
    }
    s.parse::<u32>().map_err(|_| {
        CronError(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"
        ))
    })
}

/// A Go duration (`1h30m`, `90s`, `2m`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    if !total.is_finite() || total > 1e12 {
        return None;
    }
    Some(Duration::milliseconds((total * 1000.0) as i64))
}

/// The time zone named `name` (an IANA name such as `Europe/Berlin`; empty or `UTC`: UTC).
pub fn time_zone(name: Option<&str>) -> Result<Tz, CronError> {
    match name {
        None | Some("") => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| CronError(format!("unknown time zone {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(spec: &str, after: &str, tz: &str) -> String {
        Schedule::parse(spec)
            .unwrap()
            .next_after(at(after), time_zone(Some(tz)).unwrap())
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn fields_ranges_steps_and_names() {
        assert_eq!(
            next("*/5 * * * *", "2026-01-01T10:03:20Z", "UTC"),
            "2026-01-01T10:05:00+00:00"
        );
        assert_eq!(
            next("* * * * *", "2026-01-01T10:05:00Z", "UTC"),
            "2026-01-01T10:06:00+00:00"
        );
        assert_eq!(
            next("0 9-17/4 * * MON-fri", "2026-01-03T00:00:00Z", "UTC"),
            "2026-01-05T09:00:00+00:00"
        );
        assert_eq!(
            next("30 2 1 jan,jul *", "2026-02-01T00:00:00Z", "UTC"),
            "2026-07-01T02:30:00+00:00"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T10:00:00Z", "UTC"),
            "2026-01-01T11:00:00+00:00"
        );
        assert_eq!(
            next("@every 90s", "2026-01-01T10:00:00Z", "UTC"),
            "2026-01-01T10:01:30+00:00"
        );
        // Day of month or day of week when both are restricted; both when one is `*`.
        assert_eq!(
            next("0 0 13 * 5", "2026-01-01T00:00:00Z", "UTC"),
            "2026-01-02T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * *", "2026-01-01T00:00:00Z", "UTC"),
            "2026-01-13T00:00:00+00:00"
        );
        assert!(Schedule::parse("0 0 30 2 *")
            .unwrap()
            .next_after(at("2026-01-01T00:00:00Z"), Tz::UTC)
            .is_none());
    }

    #[test]
    fn time_zones_and_dst() {
        assert_eq!(
            next("0 9 * * *", "2026-06-01T00:00:00Z", "Europe/Berlin"),
            "2026-06-01T07:00:00+00:00"
        );
        // 02:30 does not exist on 2026-03-29 in Berlin: that day is skipped.
        assert_eq!(
            next("30 2 * * *", "2026-03-28T12:00:00Z", "Europe/Berlin"),
            "2026-03-30T00:30:00+00:00"
        );
        assert!(time_zone(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn bad_schedules() {
        assert!(Schedule::parse("1/4294967295 * * * *").is_ok());
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* * * * 7",
            "5-1 * * * *",
            "*/0 * * * *",
            "x * * * *",
            "@fortnightly",
            "TZ=UTC * * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
