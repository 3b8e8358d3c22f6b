//! Kubernetes resource quantities (`100m`, `2`, `512Mi`, `1.5Gi`, `1e3`) as integers in
//! thousandths of the unit, the way the scheduler compares requests with allocatable
//! (`MilliValue`): CPU in millicores, memory in milli-bytes, extended resources in milli-units.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The value of a quantity in thousandths, rounded up as upstream's `MilliValue`; `None` for
/// text that is not a quantity.
pub fn milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    if number.is_empty() || number == "." {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    let m = value * factor * 1000.0;
    // Round up, tolerating the float error of decimal fractions (0.1 * 1000 = 100.00000000000001).
    let rounded = m.round();
    Some(if (m - rounded).abs() < 1e-6 {
        rounded
    } else {
        m.ceil()
    } as i128)
}

/// [`milli`] of a k8s-openapi quantity; unparseable quantities count as zero (the API server
/// validates them before they get here).
pub fn milli_of(q: &Quantity) -> i128 {
    milli(&q.0).unwrap_or(0)
}

/// A whole number of units as a quantity (`4`, `110`).
pub fn units(n: u64) -> Quantity {
    Quantity(n.to_string())
}

/// A number of mebibytes as a quantity in kibibytes, as kubelets report memory (`16777216Ki`).
pub fn mebibytes(mib: u64) -> Quantity {
    Quantity(format!("{}Ki", mib * 1024))
}

/// Millicores as a quantity (`3900m`, or `4` when whole).
pub fn millicores(m: u64) -> Quantity {
    if m.is_multiple_of(1000) {
        units(m / 1000)
    } else {
        Quantity(format!("{m}m"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_like_upstream() {
        let cases = [
            ("100m", Some(100)),
            ("1", Some(1000)),
            ("1.5", Some(1500)),
            ("0.1", Some(100)),
            ("2k", Some(2_000_000)),
            ("1Ki", Some(1_024_000)),
            ("512Mi", Some(512 * 1024 * 1024 * 1000)),
            ("1e3", Some(1_000_000)),
            ("1n", Some(1)),
            ("", None),
            ("abc", None),
            ("1Xi", None),
        ];
        for (text, want) in cases {
            assert_eq!(milli(text), want, "{text}");
        }
        assert_eq!(millicores(3900).0, "3900m");
        assert_eq!(millicores(4000).0, "4");
        assert_eq!(milli_of(&mebibytes(1)), 1024 * 1024 * 1000);
    }

    proptest! {
        #[test]
        fn formatted_quantities_round_trip(m in 0u64..10_000_000, mib in 0u64..1_000_000) {
            prop_assert_eq!(milli_of(&millicores(m)), i128::from(m));
            prop_assert_eq!(milli_of(&mebibytes(mib)), i128::from(mib) * 1024 * 1024 * 1000);
        }
    }
}
