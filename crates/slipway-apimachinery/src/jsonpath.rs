//! The Kubernetes JSONPath subset that printer columns (and `kubectl -o jsonpath`) use.
//!
//! Supported, with or without the `{...}` wrapper and the leading `$`:
//!
//! - fields: `.spec.version`, `.metadata.labels.tier`, escaped dots `.metadata.annotations.a\.b/c`,
//!   bracket keys `['a.b/c']` and `["x"]`;
//! - arrays: `[0]`, `[-1]`, slices `[1:3]`, `[::2]`, unions `[0,2]` and `['a','b']`;
//! - wildcards `.*` and `[*]`, recursive descent `..name`;
//! - filters `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `<=`, `>`, `>=` against string,
//!   number, boolean and null literals, and existence filters `[?(@.name)]`.
//!
//! Missing keys and out-of-range indexes select nothing rather than failing (the
//! `AllowMissingKeys(true)` mode the apiserver uses for printer columns). `range`/`end`
//! templates and text outside the braces are not supported.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A parsed JSONPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Wildcard,
    /// `..`: the current values and all their descendants.
    Descend,
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Union(Vec<Selector>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Selector {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Operand,
    compare: Option<(CmpOp, Operand)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `@` followed by a path relative to the element.
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl JsonPath {
    /// Parse an expression such as `.status.conditions[?(@.type=="Ready")].status` or
    /// `{.spec.nodePools[*].name}`. The error says what was unexpected and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let inner = if let Some(rest) = trimmed.strip_prefix('{') {
            rest.strip_suffix('}')
                .ok_or_else(|| format!("unclosed action in JSONPath {text:?}"))?
                .trim()
        } else {
            trimmed
        };
        if inner.starts_with("range ") || inner == "end" {
            return Err(format!(
                "unsupported JSONPath template {text:?}: range/end are not supported"
            ));
        }
        if inner.contains('{') || inner.contains('}') {
            return Err(format!(
                "unsupported JSONPath template {text:?}: only one {{...}} action is supported"
            ));
        }
        let mut p = Parser {
            chars: inner.chars().collect(),
            pos: 0,
            text,
        };
        if p.peek() == Some('$') {
            p.pos += 1;
        }
        let segments = p.segments(false)?;
        if p.pos < p.chars.len() {
            return Err(p.unexpected());
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// Every value the expression selects, in document order.
    pub fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval_segments(&self.segments, root)
    }

    /// The text this path was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Parser<'t> {
    chars: Vec<char>,
    pos: usize,
    text: &'t str,
}

fn is_name_char(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '.' | '['
                | ']'
                | '('
                | ')'
                | '{'
                | '}'
                | '='
                | '!'
                | '<'
                | '>'
                | ','
                | '\''
                | '"'
                | '@'
                | '$'
                | '*'
        ))
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(c) => format!(
                "unexpected {c:?} at position {} in JSONPath {:?}",
                self.pos, self.text
            ),
            None => format!("unexpected end of JSONPath {:?}", self.text),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {c:?}: {}", self.unexpected()))
        }
    }

    /// Segments until the end, or (inside a filter) until something that cannot continue a
    /// path: whitespace, an operator or `)`.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut out = Vec::new();
        // A leading bare name (`spec.version`) is a field, as in `.spec.version`.
        if !in_filter && self.peek().is_some_and(is_name_char) {
            out.push(Segment::Field(self.name()?));
        }
        loop {
            match self.peek() {
                None => break,
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.pos += 2;
                    out.push(Segment::Descend);
                    match self.peek() {
                        Some('*') => {
                            self.pos += 1;
                            out.push(Segment::Wildcard);
                        }
                        Some('[') => {}
                        Some(c) if is_name_char(c) || c == '\\' => {
                            out.push(Segment::Field(self.name()?))
                        }
                        _ => return Err(self.unexpected()),
                    }
                }
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('*') => {
                            self.pos += 1;
                            out.push(Segment::Wildcard);
                        }
                        Some(c) if is_name_char(c) || c == '\\' => {
                            out.push(Segment::Field(self.name()?))
                        }
                        // `.` alone is the current object; `.[0]` is `[0]`.
                        _ => {}
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    out.push(self.bracket()?);
                }
                Some(_) if in_filter => break,
                Some(_) => return Err(self.unexpected()),
            }
        }
        Ok(out)
    }

    /// A field name; `\` escapes the next character (`a\.b` is the key `a.b`).
    fn name(&mut self) -> Result<String, String> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                let Some(next) = self.peek_at(1) else {
                    return Err(format!("dangling escape in JSONPath {:?}", self.text));
                };
                name.push(next);
                self.pos += 2;
            } else if is_name_char(c) {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.unexpected());
        }
        Ok(name)
    }

    /// The inside of `[...]`, after the `[`.
    fn bracket(&mut self) -> Result<Segment, String> {
        self.skip_ws();
        let segment = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect('(')?;
                let filter = self.filter()?;
                self.skip_ws();
                self.expect(')')?;
                Segment::Filter(Box::new(filter))
            }
            Some('\'' | '"') => {
                let mut keys = vec![self.quoted()?];
                self.skip_ws();
                while self.peek() == Some(',') {
                    self.pos += 1;
                    self.skip_ws();
                    keys.push(self.quoted()?);
                    self.skip_ws();
                }
                if keys.len() == 1 {
                    Segment::Field(keys.remove(0))
                } else {
                    Segment::Union(keys.into_iter().map(Selector::Key).collect())
                }
            }
            Some(c) if c == ':' || c == '-' || c.is_ascii_digit() => self.indexes()?,
            _ => return Err(self.unexpected()),
        };
        self.skip_ws();
        self.expect(']')?;
        Ok(segment)
    }

    /// `[n]`, `[a:b:c]` or `[n,m,...]`, after the `[`.
    fn indexes(&mut self) -> Result<Segment, String> {
        let first = self.integer()?;
        self.skip_ws();
        match self.peek() {
            Some(':') => {
                self.pos += 1;
                self.skip_ws();
                let end = self.integer()?;
                self.skip_ws();
                let mut step = None;
                if self.peek() == Some(':') {
                    self.pos += 1;
                    self.skip_ws();
                    step = self.integer()?;
                    if step == Some(0) {
                        return Err(format!(
                            "slice step cannot be zero in JSONPath {:?}",
                            self.text
                        ));
                    }
                }
                Ok(Segment::Slice(first, end, step))
            }
            Some(',') => {
                let mut items = vec![Selector::Index(first.ok_or_else(|| self.unexpected())?)];
                while self.peek() == Some(',') {
                    self.pos += 1;
                    self.skip_ws();
                    let n = self.integer()?.ok_or_else(|| self.unexpected())?;
                    items.push(Selector::Index(n));
                    self.skip_ws();
                }
                Ok(Segment::Union(items))
            }
            _ => Ok(Segment::Index(first.ok_or_else(|| self.unexpected())?)),
        }
    }

    /// An optional integer (`None` when no digits follow).
    fn integer(&mut self) -> Result<Option<i64>, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        if digits.is_empty() {
            return Ok(None);
        }
        digits
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid index {digits:?} in JSONPath {:?}", self.text))
    }

    /// A single- or double-quoted string with backslash escapes.
    fn quoted(&mut self) -> Result<String, String> {
        let Some(quote) = self.peek().filter(|c| *c == '\'' || *c == '"') else {
            return Err(self.unexpected());
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated string in JSONPath {:?}", self.text)),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let Some(next) = self.peek_at(1) else {
                        return Err(format!("unterminated string in JSONPath {:?}", self.text));
                    };
                    out.push(match next {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `left [op right]` inside `?( ... )`.
    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        let left = self.operand()?;
        self.skip_ws();
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => Some((CmpOp::Eq, 2)),
            (Some('!'), Some('=')) => Some((CmpOp::Ne, 2)),
            (Some('<'), Some('=')) => Some((CmpOp::Le, 2)),
            (Some('>'), Some('=')) => Some((CmpOp::Ge, 2)),
            (Some('<'), _) => Some((CmpOp::Lt, 1)),
            (Some('>'), _) => Some((CmpOp::Gt, 1)),
            (Some(')'), _) => None,
            _ => return Err(self.unexpected()),
        };
        let compare = match op {
            Some((op, len)) => {
                self.pos += len;
                self.skip_ws();
                Some((op, self.operand()?))
            }
            None => None,
        };
        Ok(Filter { left, compare })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek() {
            Some('@') => {
                self.pos += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some('\'' | '"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str::<serde_json::Number>(&text)
                    .map(|n| Operand::Literal(Value::Number(n)))
                    .map_err(|_| format!("invalid number {text:?} in JSONPath {:?}", self.text))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "true" => Ok(Operand::Literal(Value::Bool(true))),
                    "false" => Ok(Operand::Literal(Value::Bool(false))),
                    "null" | "nil" => Ok(Operand::Literal(Value::Null)),
                    _ => Err(format!(
                        "unrecognized identifier {word:?} in JSONPath filter {:?}",
                        self.text
                    )),
                }
            }
            _ => Err(self.unexpected()),
        }
    }
}

fn eval_segments<'a>(segments: &[Segment], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for segment in segments {
        let mut next = Vec::new();
        for value in current {
            apply(segment, value, &mut next);
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current
}

fn apply<'a>(segment: &Segment, value: &'a Value, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(name) => {
            if let Some(v) = value.get(name.as_str()) {
                out.push(v);
            }
        }
        Segment::Wildcard => match value {
            Value::Object(map) => out.extend(map.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Segment::Descend => descend(value, out),
        Segment::Index(i) => {
            if let Some(v) = value.as_array().and_then(|items| index(items, *i)) {
                out.push(v);
            }
        }
        Segment::Slice(start, end, step) => {
            if let Some(items) = value.as_array() {
                for i in slice_indexes(items.len(), *start, *end, *step) {
                    out.push(&items[i]);
                }
            }
        }
        Segment::Union(selectors) => {
            for selector in selectors {
                match selector {
                    Selector::Key(k) => {
                        if let Some(v) = value.get(k.as_str()) {
                            out.push(v);
                        }
                    }
                    Selector::Index(i) => {
                        if let Some(v) = value.as_array().and_then(|items| index(items, *i)) {
                            out.push(v);
                        }
                    }
                }
            }
        }
        Segment::Filter(filter) => {
            if let Some(items) = value.as_array() {
                out.extend(items.iter().filter(|item| filter.accepts(item)));
            }
        }
    }
}

fn descend<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(value);
    match value {
        Value::Object(map) => map.values().for_each(|v| descend(v, out)),
        Value::Array(items) => items.iter().for_each(|v| descend(v, out)),
        _ => {}
    }
}

fn index(items: &[Value], i: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i).ok().and_then(|i| items.get(i))
}

/// Python slice semantics, clamped to the array.
fn slice_indexes(
    len: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> Vec<usize> {
    let Ok(len) = i64::try_from(len) else {
        return Vec::new();
    };
    let step = step.unwrap_or(1);
    let clamp = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v + len } else { v };
        v.clamp(lo, hi)
    };
    let mut out = Vec::new();
    if step > 0 {
        let start = start.map_or(0, |s| clamp(s, 0, len));
        let end = end.map_or(len, |e| clamp(e, 0, len));
        let mut i = start;
        while i < end {
            out.extend(usize::try_from(i).ok());
            i = i.saturating_add(step);
        }
    } else if step < 0 {
        let start = start.map_or(len - 1, |s| clamp(s, -1, len - 1));
        let end = end.map_or(-1, |e| clamp(e, -1, len - 1));
        let mut i = start;
        while i > end {
            out.extend(usize::try_from(i).ok());
            i = i.saturating_add(step);
        }
    }
    out
}

impl Filter {
    fn accepts(&self, item: &Value) -> bool {
        let Some(left) = self.left.resolve(item) else {
            return false;
        };
        let Some((op, right)) = &self.compare else {
            return true;
        };
        let Some(right) = right.resolve(item) else {
            return false;
        };
        match op {
            CmpOp::Eq => loose_eq(left, right),
            CmpOp::Ne => !loose_eq(left, right),
            CmpOp::Lt => compare(left, right) == Some(Ordering::Less),
            CmpOp::Le => matches!(compare(left, right), Some(Ordering::Less | Ordering::Equal)),
            CmpOp::Gt => compare(left, right) == Some(Ordering::Greater),
            CmpOp::Ge => matches!(
                compare(left, right),
                Some(Ordering::Greater | Ordering::Equal)
            ),
        }
    }
}

impl Operand {
    /// The first value the operand denotes for this element, if any.
    fn resolve<'a>(&'a self, item: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Literal(v) => Some(v),
            Operand::Current(segments) => eval_segments(segments, item).into_iter().next(),
        }
    }
}

/// Equality where 3 and 3.0 are the same number.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Value {
        json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {
                "name": "payments-eu",
                "labels": {"tier": "production", "app.kubernetes.io/name": "payments"},
                "annotations": {"example.com/owner": "team-payments"}
            },
            "spec": {
                "version": "1.33.4",
                "controlPlane": {"replicas": 3},
                "nodePools": [
                    {"name": "general", "replicas": 3, "capacityType": "on-demand"},
                    {"name": "gpu", "replicas": 0, "capacityType": "spot"},
                    {"name": "batch", "replicas": 5, "capacityType": "spot"}
                ]
            },
            "status": {
                "conditions": [
                    {"type": "ControlPlaneReady", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "Provisioning"}
                ]
            }
        })
    }

    fn eval(path: &str, obj: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .eval(obj)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn printer_column_paths() {
        let obj = cluster();
        let cases: Vec<(&str, Value)> = vec![
            (".spec.version", json!(["1.33.4"])),
            ("{.spec.version}", json!(["1.33.4"])),
            ("{ .spec.version }", json!(["1.33.4"])),
            ("$.spec.version", json!(["1.33.4"])),
            ("spec.version", json!(["1.33.4"])),
            (".metadata.labels.tier", json!(["production"])),
            (".metadata.labels.absent", json!([])),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                json!(["payments"]),
            ),
            (
                ".metadata.labels[\"app.kubernetes.io/name\"]",
                json!(["payments"]),
            ),
            (
                ".metadata.labels.app\\.kubernetes\\.io/name",
                json!(["payments"]),
            ),
            (
                ".metadata.annotations.example\\.com/owner",
                json!(["team-payments"]),
            ),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                json!(["False"]),
            ),
            (
                ".status.conditions[?(@.type=='Ready')].reason",
                json!(["Provisioning"]),
            ),
            (
                ".status.conditions[?( @.type == \"Ready\" )].status",
                json!(["False"]),
            ),
            (
                ".status.conditions[?(@.type!=\"Ready\")].type",
                json!(["ControlPlaneReady"]),
            ),
            (
                ".status.conditions[?(@.type==\"Missing\")].status",
                json!([]),
            ),
            (".status.conditions[?(@.reason)].type", json!(["Ready"])),
            (
                ".spec.nodePools[*].name",
                json!(["general", "gpu", "batch"]),
            ),
            (".spec.nodePools[0].replicas", json!([3])),
            (".spec.nodePools[-1].name", json!(["batch"])),
            (".spec.nodePools[7].name", json!([])),
            (".spec.nodePools[0:2].name", json!(["general", "gpu"])),
            (".spec.nodePools[1:].name", json!(["gpu", "batch"])),
            (".spec.nodePools[::2].name", json!(["general", "batch"])),
            (
                ".spec.nodePools[::-1].name",
                json!(["batch", "gpu", "general"]),
            ),
            (".spec.nodePools[0,2].name", json!(["general", "batch"])),
            (
                ".spec.nodePools[?(@.replicas>2)].name",
                json!(["general", "batch"]),
            ),
            (
                ".spec.nodePools[?(@.replicas>=3)].name",
                json!(["general", "batch"]),
            ),
            (".spec.nodePools[?(@.replicas<3)].name", json!(["gpu"])),
            (".spec.nodePools[?(@.replicas<=0)].name", json!(["gpu"])),
            (".spec.nodePools[?(@.replicas==5.0)].name", json!(["batch"])),
            (
                ".spec.nodePools[?(@.capacityType=='spot')].name",
                json!(["gpu", "batch"]),
            ),
            (".spec.controlPlane.*", json!([3])),
            (
                ".spec['controlPlane', 'version']",
                json!([{"replicas": 3}, "1.33.4"]),
            ),
            ("..replicas", json!([3, 3, 0, 5])),
            (".spec.version.nothing", json!([])),
            (".spec.nodePools.name", json!([])),
        ];
        for (path, want) in cases {
            assert_eq!(Value::Array(eval(path, &obj)), want, "{path}");
        }
        assert_eq!(eval(".", &obj), vec![obj.clone()]);
        assert_eq!(eval("{}", &obj), vec![obj.clone()]);
        assert_eq!(
            eval("{endpoint}", &json!({"endpoint": "x"})),
            vec![json!("x")]
        );
    }

    #[test]
    fn malformed_paths_are_errors() {
        for bad in [
            ".spec[",
            ".spec[0",
            ".spec['a]",
            "{.spec",
            ".spec]",
            ".status.conditions[?(@.type==)]",
            ".status.conditions[?(@.type==\"x\"]",
            ".status.conditions[?(@.type ~ 1)]",
            ".a[::0]",
            "{range .items[*]}{.name}{end}",
            "{.a}{.b}",
            ".a..",
            ".a[x]",
            ".a\\",
            ".a[?(@.b==bogus)]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should not parse");
        }
        let err = JsonPath::parse(".spec]").unwrap_err();
        assert!(err.contains("']'") && err.contains("position 5"), "{err}");
    }

    #[test]
    fn display_keeps_the_text() {
        let p = JsonPath::parse("{.spec.version}").unwrap();
        assert_eq!(p.to_string(), "{.spec.version}");
        assert_eq!(p.as_str(), "{.spec.version}");
    }

    #[test]
    fn scalars_and_nulls() {
        assert_eq!(eval(".a", &json!({"a": null})), vec![Value::Null]);
        assert!(eval(".a.b", &json!("text")).is_empty());
        assert!(eval("[0]", &json!({"0": 1})).is_empty());
        assert_eq!(eval("[0]", &json!([1])), vec![json!(1)]);
        let big = "[0:9223372036854775807:9223372036854775807]";
        assert_eq!(eval(big, &json!([1, 2])), vec![json!(1)]);
        let big_back = "[-1:-9223372036854775808:-9223372036854775808]";
        assert_eq!(eval(big_back, &json!([1, 2])), vec![json!(2)]);
        assert_eq!(eval("[?(@==2)]", &json!([1, 2, 3])), vec![json!(2)]);
        assert_eq!(
            eval(
                "[?(@.x==null)].y",
                &json!([{"x": null, "y": 1}, {"x": 1, "y": 2}])
            ),
            vec![json!(1)]
        );
        assert_eq!(
            eval(
                "[?(@.ok==true)].y",
                &json!([{"ok": true, "y": 1}, {"ok": false, "y": 2}])
            ),
            vec![json!(1)]
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_and_eval_never_panic(text in "[.\\[\\]a-c0-9*?@()=!<>:,'\" {}$-]{0,24}") {
            if let Ok(path) = JsonPath::parse(&text) {
                let _ = path.eval(&cluster());
            }
        }
    }
}
