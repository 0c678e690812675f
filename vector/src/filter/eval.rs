//! Evaluating a filter: each condition is a roaring bitmap read from the attribute
//! indexes (a point read per value, a key-range scan for a numeric range), combined with
//! set operations and restricted to the live records.

use bytes::Bytes;
use futures::future::try_join_all;
use opendata_common::merge::RoaringDelta;
use roaring::RoaringBitmap;

use crate::error::Result;
use crate::filter::{Bound, Filter};
use crate::model::{AttributeType, AttributeValue};
use crate::serde::{self as keys, attribute};
use crate::storage::Collection;

impl Collection {
    /// The live records matching `filter`.
    pub async fn evaluate(&self, filter: &Filter) -> Result<RoaringBitmap> {
        let mut out = self.eval(filter).await?;
        out &= &*self.live.read();
        Ok(out)
    }

    pub(crate) fn eval<'a>(
        &'a self,
        filter: &'a Filter,
    ) -> futures::future::BoxFuture<'a, Result<RoaringBitmap>> {
        Box::pin(async move {
            Ok(match filter {
                Filter::Eq(f, v) => self.bitmap(attribute::value_key(self.id, f, v)).await?,
                Filter::Contains(f, s) => {
                    self.bitmap(attribute::value_key(
                        self.id,
                        f,
                        &AttributeValue::String(s.clone()),
                    ))
                    .await?
                }
                Filter::In(f, vs) => self.union_of(f, vs).await?,
                Filter::Ne(f, v) => {
                    let mut e = self.bitmap(keys::exists_key(self.id, f)).await?;
                    e -= self.bitmap(attribute::value_key(self.id, f, v)).await?;
                    e
                }
                Filter::NotIn(f, vs) => {
                    let mut e = self.bitmap(keys::exists_key(self.id, f)).await?;
                    e -= self.union_of(f, vs).await?;
                    e
                }
                Filter::Exists(f) => self.bitmap(keys::exists_key(self.id, f)).await?,
                Filter::Range {
                    field,
                    lower,
                    upper,
                } => self.range(field, lower.as_ref(), upper.as_ref()).await?,
                Filter::And(parts) => {
                    let mut acc: Option<RoaringBitmap> = None;
                    for p in parts {
                        let b = self.eval(p).await?;
                        acc = Some(match acc {
                            None => b,
                            Some(a) => a & b,
                        });
                        if acc.as_ref().is_some_and(|a| a.is_empty()) {
                            break;
                        }
                    }
                    acc.unwrap_or_else(|| self.live.read().clone())
                }
                Filter::Or(parts) => {
                    let mut acc = RoaringBitmap::new();
                    for p in parts {
                        acc |= self.eval(p).await?;
                    }
                    acc
                }
                Filter::Not(inner) => {
                    let b = self.eval(inner).await?;
                    let mut all = self.live.read().clone();
                    all -= b;
                    all
                }
            })
        })
    }

    pub(crate) async fn bitmap(&self, key: Bytes) -> Result<RoaringBitmap> {
        Ok(match self.cached_get(&key).await? {
            Some(v) => RoaringDelta::members(&v)?,
            None => RoaringBitmap::new(),
        })
    }

    pub(crate) async fn union_of(
        &self,
        field: &str,
        values: &[AttributeValue],
    ) -> Result<RoaringBitmap> {
        let futs = values
            .iter()
            .map(|v| self.bitmap(attribute::value_key(self.id, field, v)));
        let maps = try_join_all(futs).await?;
        Ok(maps.into_iter().fold(RoaringBitmap::new(), |a, b| a | b))
    }

    pub(crate) async fn range(
        &self,
        field: &str,
        lower: Option<&Bound>,
        upper: Option<&Bound>,
    ) -> Result<RoaringBitmap> {
        let ty = self.spec.attributes.get(field).copied();
        let tag = match ty {
            Some(AttributeType::Integer) => 2u8,
            _ => 3u8,
        };
        let mut type_prefix = attribute::name_prefix(self.id, field);
        type_prefix.push(tag);
        let start = match lower {
            Some(b) => {
                let key = attribute::value_key(self.id, field, &b.value);
                if b.inclusive {
                    key
                } else {
                    attribute::after_prefix(&key)
                }
            }
            None => Bytes::from(type_prefix.clone()),
        };
        let end = match upper {
            Some(b) => {
                let key = attribute::value_key(self.id, field, &b.value);
                if b.inclusive {
                    attribute::after_prefix(&key)
                } else {
                    key
                }
            }
            None => attribute::after_prefix(&type_prefix),
        };
        let mut out = RoaringBitmap::new();
        if start >= end {
            return Ok(out);
        }
        let mut iter = self.reader.scan(start..end).await?;
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            out |= RoaringDelta::members(&kv.value)?;
        }
        Ok(out)
    }
}
