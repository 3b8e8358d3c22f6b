//! An index from tag to the ids of the resources carrying it, so that a list by tag (what the
//! controllers do on every reconcile: "the machines of cluster X") costs what it returns, not
//! the size of the cloud.
//!
//! Tags never change after a resource is created, so the index is kept by adding an id when
//! its resource is created or loaded and removing it when the resource is forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use slipway_provider::Tags;

#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    ids: HashMap<(String, String), BTreeSet<String>>,
}

impl TagIndex {
    /// Record that resource `id` carries `tags`.
    pub(crate) fn add(&mut self, tags: &Tags, id: &str) {
        for (k, v) in tags {
            self.ids
                .entry((k.clone(), v.clone()))
                .or_default()
                .insert(id.to_string());
        }
    }

    /// Forget resource `id`, which carried `tags`.
    pub(crate) fn remove(&mut self, tags: &Tags, id: &str) {
        for (k, v) in tags {
            let key = (k.clone(), v.clone());
            if let Some(set) = self.ids.get_mut(&key) {
                set.remove(id);
                if set.is_empty() {
                    self.ids.remove(&key);
                }
            }
        }
    }

    /// Whether some resource carries tag `key=value`.
    pub(crate) fn has(&self, key: &str, value: &str) -> bool {
        self.ids.contains_key(&(key.to_string(), value.to_string()))
    }

    /// Every value of tag `key` some resource carries.
    pub(crate) fn values(&self, key: &str) -> BTreeSet<String> {
        self.ids
            .keys()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The resources of `all` that carry every tag of `selector` (`tags_of` gives a
    /// resource's tags), each as `view` makes it, in id order. The result is sized once for
    /// the candidates: an unfiltered list of a large cloud copies each resource once,
    /// without the vector growing under it.
    pub(crate) fn select<T, U>(
        &self,
        all: &BTreeMap<String, T>,
        selector: &Tags,
        tags_of: impl Fn(&T) -> &Tags,
        view: impl FnMut(&T) -> U,
    ) -> Vec<U> {
        let candidates = self.candidates(all, selector);
        let mut out = Vec::with_capacity(candidates.len());
        out.extend(
            candidates
                .into_iter()
                .filter(|r| slipway_provider::tags_match(tags_of(r), selector))
                .map(view),
        );
        out
    }

    /// The resources of `all` that may match `selector` (every one when it is empty; callers
    /// still check every tag of the selector), in id order.
    pub(crate) fn candidates<'a, T>(
        &self,
        all: &'a BTreeMap<String, T>,
        selector: &Tags,
    ) -> Vec<&'a T> {
        let narrowest = selector
            .iter()
            .map(|(k, v)| self.ids.get(&(k.clone(), v.clone())))
            .min_by_key(|set| set.map_or(0, BTreeSet::len));
        match narrowest {
            None => all.values().collect(),
            Some(None) => Vec::new(),
            Some(Some(ids)) => ids.iter().filter_map(|id| all.get(id)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn narrows_to_the_tagged_and_forgets_the_removed() {
        let mut index = TagIndex::default();
        let mut all = BTreeMap::new();
        for (id, t) in [
            ("a", tags(&[("cluster", "x"), ("machine", "1")])),
            ("b", tags(&[("cluster", "x"), ("machine", "2")])),
            ("c", tags(&[("cluster", "y")])),
        ] {
            index.add(&t, id);
            all.insert(id.to_string(), t);
        }
        let ids = |index: &TagIndex, all: &BTreeMap<String, Tags>, sel: &Tags| {
            index.select(all, sel, |t| t, Clone::clone).len()
        };
        // Every tag of the selector must match, and the views come in id order.
        let machines = index.select(
            &all,
            &tags(&[("cluster", "x")]),
            |t| t,
            |t| t["machine"].clone(),
        );
        assert_eq!(machines, ["1", "2"]);
        assert_eq!(ids(&index, &all, &tags(&[("cluster", "x")])), 2);
        assert_eq!(
            ids(&index, &all, &tags(&[("cluster", "x"), ("machine", "2")])),
            1
        );
        assert_eq!(ids(&index, &all, &tags(&[("cluster", "z")])), 0);
        assert_eq!(ids(&index, &all, &Tags::new()), 3);
        let gone = all.remove("a").expect("present");
        index.remove(&gone, "a");
        assert_eq!(ids(&index, &all, &tags(&[("cluster", "x")])), 1);
        assert!(!index.ids.contains_key(&("machine".into(), "1".into())));
        let values = |index: &TagIndex| index.values("cluster").into_iter().collect::<Vec<_>>();
        assert_eq!(values(&index), ["x", "y"]);
        let gone = all.remove("c").expect("present");
        index.remove(&gone, "c");
        assert_eq!(values(&index), ["x"], "a value no resource carries is gone");
    }
}
