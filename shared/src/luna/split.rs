//! The one place the train/validation rules live, both of them, so that
//! `train`, `eval`, `predict` and the Python reader split alike:
//!
//! - by candidate (chapters 11–12): every `val_stride`-th candidate of the
//!   canonical list, starting with the first (`list[::val_stride]`);
//! - by series (chapter 13's `Luna2dSegmentationDataset`, chapter 14's
//!   classifier): every `val_stride`-th series of the series sorted by uid,
//!   starting with the first, and every candidate of such a series; no
//!   validation scan is then ever seen in training.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::LunaError;

/// Which rule splits the candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    /// Every `val_stride`-th candidate (the book's chapter 12).
    #[default]
    Candidate,
    /// Every `val_stride`-th series, whole.
    Series,
}

impl fmt::Display for SplitBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitBy::Candidate => "candidate",
            SplitBy::Series => "series",
        })
    }
}

impl FromStr for SplitBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "candidate" => Ok(SplitBy::Candidate),
            "series" => Ok(SplitBy::Series),
            other => Err(format!("{other:?}: expected candidate or series")),
        }
    }
}

/// The candidate rule for one position of the canonical list.
pub fn is_validation(position: usize, val_stride: usize) -> bool {
    position.is_multiple_of(val_stride)
}

/// The book's split of a list by position: `(train, val)`, in list order.
pub fn split<T: Clone>(list: &[T], val_stride: usize) -> Result<(Vec<T>, Vec<T>), LunaError> {
    if val_stride == 0 {
        return Err(LunaError::ZeroStride);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, item) in list.iter().enumerate() {
        if is_validation(i, val_stride) {
            val.push(item.clone());
        } else {
            train.push(item.clone());
        }
    }
    Ok((train, val))
}

/// [`split`] of the positions `0..len`, as cache indices.
pub fn split_indices(len: usize, val_stride: usize) -> Result<(Vec<u32>, Vec<u32>), LunaError> {
    let positions: Vec<u32> = (0..len as u32).collect();
    split(&positions, val_stride)
}

/// The series rule: for each of `uids` (in any order), whether it is a
/// validation series, i.e. at a multiple of `val_stride` in the sorted list.
pub fn validation_series<S: AsRef<str>>(
    uids: &[S],
    val_stride: usize,
) -> Result<Vec<bool>, LunaError> {
    if val_stride == 0 {
        return Err(LunaError::ZeroStride);
    }
    let mut sorted: Vec<usize> = (0..uids.len()).collect();
    sorted.sort_by(|&a, &b| uids[a].as_ref().cmp(uids[b].as_ref()));
    let mut val = vec![false; uids.len()];
    for (rank, &i) in sorted.iter().enumerate() {
        val[i] = is_validation(rank, val_stride);
    }
    Ok(val)
}

/// Either rule over a canonical candidate list whose `i`-th candidate lies
/// in series number `series_of[i]` of `series_uids`: `(train, val)`
/// positions, both in list order.
pub fn split_positions<S: AsRef<str>>(
    series_of: &[u32],
    series_uids: &[S],
    by: SplitBy,
    val_stride: usize,
) -> Result<(Vec<u32>, Vec<u32>), LunaError> {
    match by {
        SplitBy::Candidate => split_indices(series_of.len(), val_stride),
        SplitBy::Series => {
            let val_series = validation_series(series_uids, val_stride)?;
            let (mut train, mut val) = (Vec::new(), Vec::new());
            for (i, &s) in series_of.iter().enumerate() {
                let is_val = val_series.get(s as usize).copied().unwrap_or(false);
                if is_val { &mut val } else { &mut train }.push(i as u32);
            }
            Ok((train, val))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strideth_sorted_series_is_validation_whatever_the_input_order() {
        let uids = ["1.3.9", "1.3.1", "1.3.5", "1.3.3", "1.3.7"];
        // Sorted: 1.3.1, 1.3.3, 1.3.5, 1.3.7, 1.3.9 → ranks 0 and 2 at stride 2.
        let val = validation_series(&uids, 2).unwrap();
        assert_eq!(val, [true, true, true, false, false]);
        assert_eq!(
            validation_series(&uids, 10).unwrap(),
            [false, true, false, false, false]
        );
        assert!(validation_series(&uids, 0).is_err());
    }

    #[test]
    fn a_series_split_keeps_each_series_whole_and_the_list_order() {
        let uids = ["b", "a", "c"];
        // Candidates of series 0 (b), 1 (a), 2 (c), interleaved.
        let series_of = [0, 1, 2, 1, 0, 2, 1];
        let (train, val) = split_positions(&series_of, &uids, SplitBy::Series, 2).unwrap();
        // Sorted a, b, c: a and c validate at stride 2.
        assert_eq!(val, [1, 2, 3, 5, 6]);
        assert_eq!(train, [0, 4]);
        let (train, val) = split_positions(&series_of, &uids, SplitBy::Candidate, 2).unwrap();
        assert_eq!((train, val), (vec![1, 3, 5], vec![0, 2, 4, 6]));
    }

    #[test]
    fn split_by_reads_and_writes_its_names() {
        for by in [SplitBy::Candidate, SplitBy::Series] {
            assert_eq!(by.to_string().parse::<SplitBy>(), Ok(by));
        }
        assert!("scan".parse::<SplitBy>().is_err());
    }
}
