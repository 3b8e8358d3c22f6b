//! Small value checks shared by the kinds: durations, versions, times of day, int-or-percent
//! values, label maps, object names. Each returns what is wrong, worded for a `FieldError`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use slipway_apimachinery::meta;
use slipway_apimachinery::{FieldError, FieldPath};

/// What a duration must look like, for error messages.
pub const DURATION_FORMAT: &str =
    "must be a duration of hours, minutes and seconds such as 30m, 4h or 1h30m";

/// Parse a duration written like Go's `time.Duration` restricted to whole hours, minutes and
/// seconds, each unit at most once and in that order: `30m`, `4h`, `72h`, `1h30m`, `90s`.
/// Returns seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err(DURATION_FORMAT.into());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DURATION_FORMAT.into());
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "is too large".to_string())?;
        let (rank, unit_secs) = match rest[digits..].chars().next() {
            Some('h') => (2, 3600),
            Some('m') => (1, 60),
            Some('s') => (0, 1),
            _ => return Err(DURATION_FORMAT.into()),
        };
        if rank >= last_rank {
            return Err(format!(
                "{DURATION_FORMAT} (units h, m, s at most once each, in that order)"
            ));
        }
        last_rank = rank;
        total = n
            .checked_mul(unit_secs)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| "is too large".to_string())?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

/// A positive duration of at most `max_secs` (when given) at `path`.
pub fn check_duration(
    path: &FieldPath,
    value: &str,
    max_secs: Option<u64>,
    errs: &mut Vec<FieldError>,
) {
    let shown = Value::String(value.into());
    match parse_duration(value) {
        Err(problem) => errs.push(FieldError::invalid(path, &shown, problem)),
        Ok(0) => errs.push(FieldError::invalid(
            path,
            &shown,
            "must be greater than zero",
        )),
        Ok(secs) => {
            if let Some(max) = max_secs
                && secs > max
            {
                errs.push(FieldError::invalid(
                    path,
                    &shown,
                    format!("must be at most {}h", max / 3600),
                ));
            }
        }
    }
}

/// Parse `MAJOR.MINOR.PATCH` (decimal numbers without leading zeros).
pub fn parse_version(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.');
    let mut next = || -> Option<u64> {
        let p = parts.next()?;
        let canonical = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        if canonical { p.parse().ok() } else { None }
    };
    let version = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(version)
}

/// A time of day `HH:MM` on the 24-hour clock.
pub fn check_time_of_day(value: &str) -> Option<String> {
    let ok = value.len() == 5
        && value.as_bytes()[2] == b':'
        && matches!((value[..2].parse::<u8>(), value[3..].parse::<u8>()), (Ok(h), Ok(m)) if h < 24 && m < 60)
        && value
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    (!ok).then(|| "must be a time of day HH:MM on the 24-hour clock, such as 02:00".to_string())
}

/// An IANA time zone name, checked by shape only (the time zone database is outside this
/// crate): `UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+2`.
pub fn check_time_zone(value: &str) -> Option<String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
            && p.as_bytes()[0].is_ascii_alphabetic()
    };
    let ok = value.len() <= 128 && value.split('/').all(part_ok);
    (!ok).then(|| "must be an IANA time zone name such as UTC or Europe/Berlin".to_string())
}

/// An int-or-string that must be a non-negative integer or a percentage `N%` (at most
/// `max_percent`). Returns whether the value is zero; `None` (and an error in `errs`) when it
/// is not valid.
pub fn int_or_percent(
    path: &FieldPath,
    value: &IntOrString,
    max_percent: Option<u64>,
    errs: &mut Vec<FieldError>,
) -> Option<bool> {
    let (shown, problem) = match value {
        IntOrString::Int(n) if *n >= 0 => return Some(*n == 0),
        IntOrString::Int(n) => (
            Value::from(*n),
            "must be greater than or equal to 0".to_string(),
        ),
        IntOrString::String(s) => {
            let percent = s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok());
            let problem = match (percent, max_percent) {
                (None, _) => {
                    "must be a non-negative integer or a percentage such as 25%".to_string()
                }
                (Some(p), Some(max)) if p > max => format!("must not be greater than {max}%"),
                (Some(p), _) => return Some(p == 0),
            };
            (Value::String(s.clone()), problem)
        }
    };
    errs.push(FieldError::invalid(path, &shown, problem));
    None
}

/// Label keys and values of a map at `path` (`path` for a bad key, `path[key]` for a bad value),
/// the way `metadata.labels` is checked.
pub fn check_labels(
    path: &FieldPath,
    labels: &BTreeMap<String, String>,
    errs: &mut Vec<FieldError>,
) {
    for (k, v) in labels {
        if let Some(problem) = meta::check_qualified_name(k) {
            errs.push(FieldError::invalid(
                path,
                &Value::String(k.clone()),
                problem,
            ));
        }
        if let Some(problem) = meta::check_label_value(v) {
            errs.push(FieldError::invalid(
                &path.key(k),
                &Value::String(v.clone()),
                problem,
            ));
        }
    }
}

/// Kinds whose names become DNS labels (namespaces, clusters) check `metadata.name` as a
/// DNS-1123 label (at most 63 characters). A missing name is left to the generic metadata
/// validation, which reports it as required.
pub fn check_name_is_label(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(name) = meta::name(obj).filter(|n| !n.is_empty())
        && let Some(problem) = meta::check_dns1123_label(name)
    {
        errs.push(FieldError::invalid(
            &FieldPath::root("metadata").child("name"),
            &Value::String(name.into()),
            problem,
        ));
    }
}

/// A key of a ConfigMap's or Secret's data: at most 253 characters of alphanumerics, `-`, `_`
/// and `.`, and not `.` or `..` or starting with `..`.
pub fn check_config_key(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 253 {
        return Some("must be between 1 and 253 characters".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into());
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Some("must not be '.' or '..' or start with '..'".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("4h"), Ok(4 * 3600));
        assert_eq!(parse_duration("72h"), Ok(72 * 3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1h30m15s"), Ok(5415));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in [
            "",
            "30",
            "m",
            "1.5h",
            "30m1h",
            "1h1h",
            "1d",
            "30 m",
            "-1h",
            "1h30",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.33.4"), Some((1, 33, 4)));
        assert_eq!(parse_version("2026.11.0"), Some((2026, 11, 0)));
        for bad in [
            "v1.33.4",
            "1.33",
            "1.33.4.1",
            "1.033.4",
            "1.33.x",
            "",
            "1..4",
            "1.33.4-rc.1",
        ] {
            assert_eq!(parse_version(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_and_zones() {
        assert!(check_time_of_day("02:00").is_none());
        assert!(check_time_of_day("23:59").is_none());
        for bad in ["24:00", "2:00", "02:60", "0200", "02:0a", "+2:00"] {
            assert!(check_time_of_day(bad).is_some(), "{bad:?}");
        }
        for good in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+2",
        ] {
            assert!(check_time_zone(good).is_none(), "{good:?}");
        }
        for bad in ["", "Europe/", "/UTC", "Europe Berlin", "1abc"] {
            assert!(check_time_zone(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn int_or_percent_values() {
        let p = FieldPath::root("x");
        let check = |v: IntOrString, max: Option<u64>| {
            let mut errs = Vec::new();
            let zero = int_or_percent(&p, &v, max, &mut errs);
            assert_eq!(zero.is_none(), errs.len() == 1, "{v:?}: {errs:?}");
            zero
        };
        let s = |v: &str| IntOrString::String(v.into());
        assert_eq!(check(IntOrString::Int(0), Some(100)), Some(true));
        assert_eq!(check(IntOrString::Int(2), Some(100)), Some(false));
        assert_eq!(check(s("0%"), Some(100)), Some(true));
        assert_eq!(check(s("150%"), None), Some(false));
        assert_eq!(check(s("150%"), Some(100)), None);
        assert_eq!(check(IntOrString::Int(-1), None), None);
        assert_eq!(check(s("1"), None), None);
        assert_eq!(check(s("%"), None), None);
    }

    #[test]
    fn config_keys() {
        assert!(check_config_key("tls.crt").is_none());
        assert!(check_config_key(".dockerconfigjson").is_none());
        for bad in ["", ".", "..", "..a", "a/b", "a b"] {
            assert!(check_config_key(bad).is_some(), "{bad:?}");
        }
    }
}
