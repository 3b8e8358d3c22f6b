//! Plain-text tables as kubectl prints them: upper-case headers, columns three spaces apart,
//! ages as `45s`, `3m20s`, `5h`, `12d`.

/// Rows under headers.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Column widths that fit the headers and every row.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths
    }

    /// The header line and the rows, laid out in `widths`.
    pub fn render(&self, widths: &[usize], header: bool) -> String {
        let mut out = String::new();
        if header {
            out.push_str(&line(&self.headers, widths));
        }
        for row in &self.rows {
            out.push_str(&line(row, widths));
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.rows.is_empty() {
            return Ok(());
        }
        f.write_str(&self.render(&self.widths(), true))
    }
}

fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        out.push_str(cell);
        if i < last {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count()) + 3;
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// A duration as kubectl's `HumanDuration` prints an age.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

/// The age of something created at `time`, or `<unknown>`.
pub fn age(time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    match time {
        Some(t) => human_duration(jiff::Timestamp::now().duration_since(t.0).as_secs()),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (900, "15m"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (10 * 3600, "10h"),
            (3 * 86_400 + 3600, "3d1h"),
            (20 * 86_400, "20d"),
            (800 * 86_400, "2y"),
        ] {
            assert_eq!(human_duration(secs), text, "{secs}");
        }
    }

    #[test]
    fn columns_are_three_spaces_apart_without_trailing_blanks() {
        let mut t = Table::new(&["NAME", "READY"]);
        t.rows.push(vec!["payments".into(), "True".into()]);
        t.rows.push(vec!["a".into(), String::new()]);
        assert_eq!(t.to_string(), "NAME       READY\npayments   True\na\n");
    }
}
