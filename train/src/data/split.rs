//! Which cached candidates a command looks at. The rule itself is
//! [`shared::luna::is_validation`]; this names its parts.

use std::str::FromStr;

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

    /// Cache indices of this part of a cache of `len` candidates.
    pub fn indices(self, len: usize, val_stride: usize) -> Vec<u32> {
        // `val_stride` is validated (>= 2) before any command gets here.
        let (train, val) = shared::luna::split_indices(len, val_stride.max(1)).unwrap_or_default();
        match self {
            Split::All => (0..len as u32).collect(),
            Split::Train => train,
            Split::Val => val,
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
        let all = Split::All.indices(23, 10);
        assert_eq!(all, (0..23).collect::<Vec<u32>>());
        let val = Split::Val.indices(23, 10);
        assert_eq!(val, vec![0, 10, 20]);
        let train = Split::Train.indices(23, 10);
        assert_eq!(train.len(), 20);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(train.iter().all(|i| !val.contains(i)));
        assert_eq!("train".parse::<Split>(), Ok(Split::Train));
        assert!("test".parse::<Split>().is_err());
    }
}
