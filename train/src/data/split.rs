//! Which cached candidates a command looks at. The rules themselves are
//! [`shared::luna::split_positions`]'s; this names their parts.

use std::str::FromStr;

use shared::cache::CacheReader;
use shared::luna::{split_positions, SplitBy};

/// How a cache is split: what `val_stride` counts, and the stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitRule {
    pub by: SplitBy,
    pub val_stride: usize,
}

impl SplitRule {
    /// `(train, val)` cache indices of `reader`'s candidates, in cache
    /// order, from one pass over the index.
    pub fn parts(self, reader: &CacheReader) -> (Vec<u32>, Vec<u32>) {
        let series: Vec<u32> = reader.entries().iter().map(|e| e.series).collect();
        self.parts_of(&series, reader.series_uids())
    }

    /// `(train, val)` positions of a list whose `i`-th candidate lies in
    /// series number `series_of[i]` of `uids`.
    pub fn parts_of(self, series_of: &[u32], uids: &[String]) -> (Vec<u32>, Vec<u32>) {
        // `val_stride` is validated (>= 2) before any command gets here.
        split_positions(series_of, uids, self.by, self.val_stride.max(1)).unwrap_or_default()
    }
}

/// A part of the cache, in canonical (cache) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Every `val_stride`-th candidate, as training validates.
    Val,
    /// The candidates training learns from.
    Train,
    /// Every candidate.
    All,
}

impl Split {
    /// The name the logs use (`trn` is the book's).
    pub fn log_name(self) -> &'static str {
        match self {
            Split::Val => "val",
            Split::Train => "trn",
            Split::All => "all",
        }
    }

    /// Cache indices of this part of `reader`'s candidates, in cache order.
    pub fn of(self, reader: &CacheReader, rule: SplitRule) -> Vec<u32> {
        match self {
            Split::All => (0..reader.len() as u32).collect(),
            Split::Train => rule.parts(reader).0,
            Split::Val => rule.parts(reader).1,
        }
    }

    /// Positions of this part of a list whose `i`-th candidate lies in
    /// series number `series_of[i]` of `uids`.
    pub fn pick(self, series_of: &[u32], uids: &[String], rule: SplitRule) -> Vec<u32> {
        match self {
            Split::All => (0..series_of.len() as u32).collect(),
            Split::Train => rule.parts_of(series_of, uids).0,
            Split::Val => rule.parts_of(series_of, uids).1,
        }
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "val" => Ok(Split::Val),
            "train" | "trn" => Ok(Split::Train),
            "all" => Ok(Split::All),
            other => Err(format!("{other:?}: expected val, train or all")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_partition_the_cache_in_order() {
        let series = vec![0u32; 23];
        let uids = ["1.2.3".to_owned()];
        let rule = SplitRule {
            by: SplitBy::Candidate,
            val_stride: 10,
        };
        let all = Split::All.pick(&series, &uids, rule);
        assert_eq!(all, (0..23).collect::<Vec<u32>>());
        let val = Split::Val.pick(&series, &uids, rule);
        assert_eq!(val, vec![0, 10, 20]);
        let train = Split::Train.pick(&series, &uids, rule);
        assert_eq!(train.len(), 20);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(train.iter().all(|i| !val.contains(i)));
        assert_eq!("train".parse::<Split>(), Ok(Split::Train));
        assert!("test".parse::<Split>().is_err());
    }
}
