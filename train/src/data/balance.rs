//! How a balanced run draws its training samples: `--balanced-sampler` and
//! `--balanced-schedule` (chapter 12, exercises 2 and 3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `--balanced-sampler`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BalanceSampler {
    /// The book's interleave: every (ratio + 1)-th sample is the next
    /// positive of a shuffled list, the others walk the negatives.
    #[default]
    Ratio,
    /// torch's `WeightedRandomSampler` over the unbalanced list: draws with
    /// replacement, a positive with probability 1 / (ratio + 1).
    Weighted,
}

/// `EPOCH:RATIO` pairs with rising epochs, e.g. `1:1,3:2,6:4`: from epoch 3
/// on two negatives per positive, from epoch 6 on four.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BalanceSchedule {
    steps: Vec<(usize, u32)>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--balanced-schedule {text:?}: {why} (expected EPOCH:RATIO pairs with rising epochs from 1 and ratios >= 1, e.g. 1:1,3:2,6:4)")]
pub struct ScheduleError {
    text: String,
    why: String,
}

impl FromStr for BalanceSchedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why: String| ScheduleError {
            text: text.to_owned(),
            why,
        };
        let mut steps: Vec<(usize, u32)> = Vec::new();
        for pair in text.split(',').map(str::trim) {
            let (epoch, ratio) = pair
                .split_once(':')
                .ok_or_else(|| err(format!("{pair:?} has no ':'")))?;
            let epoch: usize = epoch
                .trim()
                .parse()
                .map_err(|_| err(format!("{epoch:?} is not an epoch number")))?;
            let ratio: u32 = ratio
                .trim()
                .parse()
                .map_err(|_| err(format!("{ratio:?} is not a whole ratio")))?;
            if epoch == 0 {
                return Err(err("epochs count from 1".into()));
            }
            if ratio == 0 {
                return Err(err(format!("ratio 0 at epoch {epoch}")));
            }
            if steps.last().is_some_and(|&(last, _)| epoch <= last) {
                return Err(err(format!(
                    "epoch {epoch} does not come after the one before"
                )));
            }
            steps.push((epoch, ratio));
        }
        Ok(BalanceSchedule { steps })
    }
}

impl TryFrom<String> for BalanceSchedule {
    type Error = ScheduleError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<BalanceSchedule> for String {
    fn from(s: BalanceSchedule) -> String {
        s.to_string()
    }
}

impl fmt::Display for BalanceSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.steps.iter().map(|(e, r)| format!("{e}:{r}")).collect();
        f.write_str(&pairs.join(","))
    }
}

impl BalanceSchedule {
    /// The ratio in force at `epoch` (1-based): the last entry at or before
    /// it, else `before` (the `--balanced` ratio).
    pub fn ratio_at(&self, epoch: usize, before: u32) -> u32 {
        self.steps
            .iter()
            .take_while(|&&(e, _)| e <= epoch)
            .last()
            .map_or(before, |&(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_steps_at_each_listed_epoch() {
        let s: BalanceSchedule = "1:1, 3:2,6:4".parse().unwrap();
        let got: Vec<u32> = (1..=7).map(|e| s.ratio_at(e, 9)).collect();
        assert_eq!(got, [1, 1, 2, 2, 2, 4, 4]);
        assert_eq!(s.to_string(), "1:1,3:2,6:4");
        let late: BalanceSchedule = "3:5".parse().unwrap();
        assert_eq!(late.ratio_at(2, 1), 1);
        assert_eq!(late.ratio_at(3, 1), 5);
    }

    #[test]
    fn malformed_schedules_say_what_is_wrong() {
        for (text, needle) in [
            ("1-1", "no ':'"),
            ("x:1", "not an epoch"),
            ("1:0", "ratio 0"),
            ("0:1", "count from 1"),
            ("3:1,2:2", "does not come after"),
            ("1:1.5", "not a whole ratio"),
            ("", "no ':'"),
        ] {
            let err = text.parse::<BalanceSchedule>().unwrap_err().to_string();
            assert!(
                err.contains("--balanced-schedule") && err.contains(needle),
                "{text}: {err}"
            );
        }
    }
}
