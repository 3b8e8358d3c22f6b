//! Field sets and their `FieldsV1` encoding, as structured-merge-diff defines them.
//!
//! A [`FieldSet`] is a set of [`Path`]s, each a list of [`PathElement`]s: a field name
//! (`f:name`), the key of an item of a map-typed list (`k:{"name":"general"}`), a member of a
//! set-typed list (`v:"finalizer"`) or an index (`i:0`, only ever read from clients). A path in
//! the set means "this node is owned"; its ancestors are implied and not owned themselves.
//!
//! `FieldsV1` writes the set as a tree: each element is a JSON key, a node that is both owned
//! and has owned children carries a `".": {}` entry first, an owned leaf is `{}`, and keys
//! follow structured-merge-diff's element order (fields by name, then keys, values, indices).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a [`Path`].
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of an object (`f:<name>`).
    Field(String),
    /// An item of a map-typed list, by its key fields sorted by name (`k:{...}`).
    Key(Vec<(String, Value)>),
    /// A member of a set-typed list (`v:<json>`).
    Value(Value),
    /// An item by position (`i:<n>`); only read from `FieldsV1`, never produced.
    Index(u64),
}

impl PathElement {
    /// A key element from unsorted key fields.
    pub fn key(mut fields: Vec<(String, Value)>) -> Self {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Self::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Field(_) => 0,
            Self::Key(_) => 1,
            Self::Value(_) => 2,
            Self::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key for this element.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(fields) => {
                let mut obj = Map::new();
                for (name, value) in fields {
                    obj.insert(name.clone(), canonical(value));
                }
                format!("k:{}", Value::Object(obj))
            }
            Self::Value(v) => format!("v:{}", canonical(v)),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parse a `FieldsV1` key (anything but `"."`).
    pub fn from_fields_v1_key(key: &str) -> Result<Self, String> {
        let (prefix, rest) = key
            .split_once(':')
            .ok_or_else(|| format!("unknown path element {key:?}: expected f:, k:, v: or i:"))?;
        match prefix {
            "f" => Ok(Self::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(fields)) if !fields.is_empty() => {
                    Ok(Self::key(fields.into_iter().collect()))
                }
                Ok(_) => Err(format!(
                    "invalid key element {key:?}: must be a non-empty JSON object"
                )),
                Err(e) => Err(format!("invalid key element {key:?}: {e}")),
            },
            "v" => serde_json::from_str::<Value>(rest)
                .map(Self::Value)
                .map_err(|e| format!("invalid value element {key:?}: {e}")),
            "i" => rest
                .parse::<u64>()
                .map(Self::Index)
                .map_err(|_| format!("invalid index element {key:?}")),
            _ => Err(format!(
                "unknown path element prefix {prefix:?} in {key:?}: expected f:, k:, v: or i:"
            )),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// structured-merge-diff's element order: fields, then keys, values, indices.
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Field(a), Self::Field(b)) => a.cmp(b),
            (Self::Key(a), Self::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Self::Value(a), Self::Value(b)) => compare_values(a, b),
            (Self::Index(a), Self::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Human form, as upstream prints paths in conflicts: `.spec`, `[name="general"]`, `[="x"]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(n, v)| format!("{n}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Self::Value(v) => write!(f, "[={}]", value_to_string(v)),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn value_to_string(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// A value with object members sorted, so equal values encode equally.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let x = a.as_f64().unwrap_or(f64::NAN);
            let y = b.as_f64().unwrap_or(f64::NAN);
            x.total_cmp(&y)
        }
    }
}

/// A total order on JSON values, structured-merge-diff's: numbers (compared numerically, so
/// `1 == 1.0`) < strings < booleans < lists < objects < null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let c = compare_values(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xk: Vec<&String> = x.keys().collect();
            let mut yk: Vec<&String> = y.keys().collect();
            xk.sort();
            yk.sort();
            for (l, r) in xk.iter().zip(&yk) {
                let c = l.cmp(r).then_with(|| compare_values(&x[*l], &y[*r]));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xk.len().cmp(&yk.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Deep equality with numbers compared numerically.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

/// A path from the root of an object to one of its nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }

    /// Whether `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.starts_with(&other.0)
    }
}

/// `.spec.nodePools[name="general"].replicas`, as upstream prints paths.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// A set of owned paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: Path) -> bool {
        self.0.insert(path)
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// Whether some path in the set lies strictly under `path`.
    pub fn has_descendant(&self, path: &Path) -> bool {
        use std::ops::Bound;
        self.0
            .range((Bound::Excluded(path), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Remove every path of `other` from this set, in place (no path is copied).
    pub fn remove_all(&mut self, other: &FieldSet) {
        if other.0.len() < self.0.len() {
            for path in &other.0 {
                self.0.remove(path);
            }
        } else {
            self.0.retain(|path| !other.0.contains(path));
        }
    }

    /// Add every path of `other` to this set, in place.
    pub fn add_all(&mut self, other: &FieldSet) {
        for path in &other.0 {
            if !self.0.contains(path) {
                self.0.insert(path.clone());
            }
        }
    }

    /// The `FieldsV1` JSON of this set, exactly as upstream writes it.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for pe in &path.0 {
                node = node.children.entry(pe.clone()).or_default();
            }
            node.member = true;
        }
        root.emit(false)
    }

    /// Read a `FieldsV1` JSON value.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::new();
        let mut prefix = Vec::new();
        read_node(value, &mut prefix, &mut set)?;
        Ok(set)
    }
}

/// Whether the `FieldsV1` JSON `raw` owns `path` (a node of it that is an owned leaf `{}` or
/// carries `"."`), read in place: nothing is decoded. `raw` must be in the canonical form
/// [`FieldSet::to_fields_v1`] writes, as every stored entry is.
pub fn fields_v1_owns(raw: &Value, path: &Path) -> bool {
    if path.0.is_empty() {
        return false;
    }
    let mut node = raw;
    let mut key = String::new();
    for pe in &path.0 {
        let Value::Object(map) = node else {
            return false;
        };
        match pe {
            PathElement::Field(name) => {
                key.clear();
                key.push_str("f:");
                key.push_str(name);
            }
            other => key = other.to_fields_v1_key(),
        }
        match map.get(&key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_object()
        .is_some_and(|m| m.is_empty() || m.contains_key("."))
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(iter: I) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

#[derive(Default)]
struct Node {
    member: bool,
    children: std::collections::BTreeMap<PathElement, Node>,
}

impl Node {
    fn emit(&self, include_self: bool) -> Value {
        let mut out = Map::new();
        if include_self && self.member && !self.children.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            out.insert(pe.to_fields_v1_key(), child.emit(true));
        }
        Value::Object(out)
    }
}

fn read_node(
    value: &Value,
    prefix: &mut Vec<PathElement>,
    set: &mut FieldSet,
) -> Result<(), String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "expected an object at {}, got {value}",
            display_prefix(prefix)
        ));
    };
    if map.is_empty() && !prefix.is_empty() {
        set.insert(Path(prefix.clone()));
        return Ok(());
    }
    for (key, child) in map {
        if key == "." {
            if prefix.is_empty() {
                return Err("\".\" is not allowed at the top level".into());
            }
            if child.as_object().is_none_or(|m| !m.is_empty()) {
                return Err(format!(
                    "\".\" must be an empty object at {}",
                    display_prefix(prefix)
                ));
            }
            set.insert(Path(prefix.clone()));
            continue;
        }
        prefix.push(PathElement::from_fields_v1_key(key)?);
        let result = read_node(child, prefix, set);
        prefix.pop();
        result?;
    }
    Ok(())
}

fn display_prefix(prefix: &[PathElement]) -> String {
    if prefix.is_empty() {
        "the top level".into()
    } else {
        Path(prefix.to_vec()).to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    fn path(elements: &[PathElement]) -> Path {
        Path(elements.to_vec())
    }

    #[test]
    fn encodes_like_upstream() {
        let pool = PathElement::key(vec![("name".into(), json!("general"))]);
        let set: FieldSet = [
            path(&[field("spec"), field("version")]),
            path(&[field("spec"), field("nodePools"), pool.clone()]),
            path(&[
                field("spec"),
                field("nodePools"),
                pool.clone(),
                field("name"),
            ]),
            path(&[field("spec"), field("nodePools"), pool, field("replicas")]),
            path(&[
                field("metadata"),
                field("finalizers"),
                PathElement::Value(json!("slipway.dev/x")),
            ]),
            path(&[field("metadata"), field("labels"), field("tier")]),
        ]
        .into_iter()
        .collect();
        let encoded = set.to_fields_v1();
        assert_eq!(
            serde_json::to_string(&encoded).unwrap(),
            r#"{"f:metadata":{"f:finalizers":{"v:\"slipway.dev/x\"":{}},"f:labels":{"f:tier":{}}},"f:spec":{"f:nodePools":{"k:{\"name\":\"general\"}":{".":{},"f:name":{},"f:replicas":{}}},"f:version":{}}}"#
        );
        assert_eq!(FieldSet::from_fields_v1(&encoded).unwrap(), set);
    }

    #[test]
    fn element_order_and_display() {
        let k = |n: i64| {
            PathElement::key(vec![
                ("port".into(), json!(n)),
                ("protocol".into(), json!("TCP")),
            ])
        };
        let mut els = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            k(443),
            field("z"),
            k(80),
            field("a"),
        ];
        els.sort();
        let shown: Vec<String> = els.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                ".a",
                ".z",
                "[port=80,protocol=\"TCP\"]",
                "[port=443,protocol=\"TCP\"]",
                "[=\"a\"]",
                "[0]"
            ]
        );
        assert_eq!(
            k(80).to_fields_v1_key(),
            r#"k:{"port":80,"protocol":"TCP"}"#
        );
        assert_eq!(
            PathElement::from_fields_v1_key(r#"k:{"protocol":"TCP","port":80.0}"#).unwrap(),
            k(80)
        );
    }

    #[test]
    fn rejects_malformed_fields_v1() {
        for bad in [
            json!({"x:foo": {}}),
            json!({"foo": {}}),
            json!({"f:spec": []}),
            json!({"f:spec": {".": {"f:a": {}}, "f:b": {}}}),
            json!({"k:{\"name\"": {}}),
            json!({"k:[1]": {}}),
            json!({"i:-1": {}}),
            json!({".": {}}),
            json!([]),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
        assert!(FieldSet::from_fields_v1(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn set_algebra() {
        let a = path(&[field("spec")]);
        let b = path(&[field("spec"), field("version")]);
        let c = path(&[field("status")]);
        let s1: FieldSet = [a.clone(), b.clone()].into_iter().collect();
        let s2: FieldSet = [b.clone(), c.clone()].into_iter().collect();
        assert_eq!(s1.intersection(&s2).iter().collect::<Vec<_>>(), [&b]);
        assert_eq!(s1.difference(&s2).iter().collect::<Vec<_>>(), [&a]);
        assert_eq!(s1.union(&s2).len(), 3);
        let mut in_place = s1.clone();
        in_place.remove_all(&s2);
        assert_eq!(in_place, s1.difference(&s2));
        in_place.add_all(&s2);
        assert_eq!(in_place, s1.union(&s2));
        let mut big = s1.union(&s2);
        big.remove_all(&s1);
        assert_eq!(big, s2.difference(&s1));
        assert!(s1.has_descendant(&a));
        assert!(!s1.has_descendant(&b));
        assert!(!s2.has_descendant(&path(&[field("spe")])));
    }
}
