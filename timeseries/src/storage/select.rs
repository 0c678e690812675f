//! Series selection: the one algorithm that turns label matchers into the set of
//! matching series ids, over any inverted index.
//!
//! The head keeps each open bucket's index in memory, closed buckets keep theirs in
//! storage; both answer the four questions of [`Postings`], and [`select`] combines the
//! answers:
//!
//! - matchers that select (do not match the empty value) go first, equality first among
//!   them: they shrink the candidate set fastest;
//! - a selecting matcher is a set of series: one bitmap for `=`, the union over literal
//!   alternatives for a regex like `a|b`, the union over matching values otherwise;
//! - a matcher that matches the empty value (`x!="a"`, `x=""`, `x=~"a|"`) can only
//!   remove series from the candidates: those whose value of the label does not match;
//! - the candidates shrink matcher by matcher, and an empty set ends the work early.

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::model::{MatchKind, Matcher};

/// An inverted index: series ids by label name and value.
pub(crate) trait Postings {
    /// Every series.
    async fn all(&self) -> Result<RoaringBitmap>;
    /// The series that have label `name`.
    async fn with_name(&self, name: &str) -> Result<RoaringBitmap>;
    /// The series whose label `name` is `value`.
    async fn equal(&self, name: &str, value: &str) -> Result<RoaringBitmap>;
    /// The union of the series whose value of label `name` satisfies `keep`.
    async fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Result<RoaringBitmap>;
}

/// Matchers that select (do not match the empty value) first, equality first among them.
pub(crate) fn order_matchers(matchers: &[Matcher]) -> Vec<&Matcher> {
    let mut ordered: Vec<&Matcher> = matchers.iter().collect();
    ordered.sort_by_key(|m| (m.matches_empty(), !matches!(m.kind, MatchKind::Equal)));
    ordered
}

/// The series of `postings` that match every matcher (every series for none).
pub(crate) async fn select<P: Postings>(
    postings: &P,
    matchers: &[Matcher],
) -> Result<RoaringBitmap> {
    let mut result: Option<RoaringBitmap> = None;
    for m in order_matchers(matchers) {
        let set = if m.matches_empty() {
            let mut out = match result.take() {
                Some(r) => r,
                None => postings.all().await?,
            };
            out -= match m.kind {
                // name="": the series without the label.
                MatchKind::Equal => postings.with_name(&m.name).await?,
                // name!="v" (v not empty): the series whose value is v.
                MatchKind::NotEqual => postings.equal(&m.name, &m.value).await?,
                _ => postings.union_where(&m.name, |v| !m.matches(v)).await?,
            };
            out
        } else {
            let set = match (m.kind, m.literal_alternatives()) {
                (MatchKind::Equal, _) => postings.equal(&m.name, &m.value).await?,
                // name!="": every series with the label.
                (MatchKind::NotEqual, _) => postings.with_name(&m.name).await?,
                (_, Some(literals)) => {
                    let mut out = RoaringBitmap::new();
                    for l in literals {
                        out |= postings.equal(&m.name, &l).await?;
                    }
                    out
                }
                _ => postings.union_where(&m.name, |v| m.matches(v)).await?,
            };
            match result.take() {
                Some(r) => r & set,
                None => set,
            }
        };
        let empty = set.is_empty();
        result = Some(set);
        if empty {
            break;
        }
    }
    match result {
        Some(r) => Ok(r),
        None => postings.all().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::FutureExt;
    use proptest::prelude::*;

    use super::*;
    use crate::model::Labels;

    /// An index over label sets in memory, answering like the stored one: `all` is the
    /// series with a metric name.
    struct Sets(Vec<Labels>);

    impl Postings for Sets {
        async fn all(&self) -> Result<RoaringBitmap> {
            self.with_name("__name__").await
        }
        async fn with_name(&self, name: &str) -> Result<RoaringBitmap> {
            self.union_where(name, |_| true).await
        }
        async fn equal(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
            self.union_where(name, |v| v == value).await
        }
        async fn union_where(
            &self,
            name: &str,
            keep: impl Fn(&str) -> bool,
        ) -> Result<RoaringBitmap> {
            Ok((0u32..)
                .zip(&self.0)
                .filter(|(_, l)| l.get(name).is_some_and(&keep))
                .map(|(i, _)| i)
                .collect())
        }
    }

    fn matcher() -> impl Strategy<Value = Matcher> {
        let kinds = prop_oneof![
            Just(MatchKind::Equal),
            Just(MatchKind::NotEqual),
            Just(MatchKind::Regex),
            Just(MatchKind::NotRegex),
        ];
        let values = prop_oneof![
            Just(String::new()),
            "[ab]".prop_map(String::from),
            Just("a|b".to_string()),
            Just("a.*".to_string()),
            Just(".*".to_string()),
            Just("a|".to_string()),
        ];
        (
            kinds,
            prop_oneof![Just("__name__"), Just("x"), Just("y")],
            values,
        )
            .prop_map(|(k, n, v)| Matcher::new(k, n, v).unwrap())
    }

    proptest! {
        /// Whatever the matchers, `select` finds exactly the series that match them all
        /// (a missing label matching as the empty value).
        #[test]
        fn should_select_exactly_the_matching_series(
            series in proptest::collection::vec(
                proptest::collection::btree_map(
                    prop_oneof![Just("x"), Just("y")],
                    prop_oneof![Just("a"), Just("b"), Just("c")],
                    0..3,
                ),
                0..20,
            ),
            matchers in proptest::collection::vec(matcher(), 0..4),
        ) {
            let sets = Sets(
                series
                    .iter()
                    .map(|m: &BTreeMap<&str, &str>| {
                        let mut pairs = vec![("__name__", "m")];
                        pairs.extend(m.iter().map(|(k, v)| (*k, *v)));
                        Labels::from_pairs(pairs)
                    })
                    .collect(),
            );
            let got = select(&sets, &matchers).now_or_never().unwrap().unwrap();
            let want: RoaringBitmap = (0u32..)
                .zip(&sets.0)
                .filter(|(_, l)| matchers.iter().all(|m| m.matches_labels(l)))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
