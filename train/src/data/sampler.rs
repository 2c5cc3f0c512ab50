//! Which training samples each epoch visits, in which order.
//!
//! Like FFCV's traversal orders, an epoch's order is a pure function of
//! (seed, epoch): a run is reproducible, and a resumed run visits exactly
//! what the uninterrupted one would have.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::balance::{BalanceSampler, BalanceSchedule};

/// The book's balanced epoch length (`LunaDataset.__len__` with a ratio).
pub const BALANCED_EPOCH_SAMPLES: usize = 200_000;

/// Chapter 12's `__getitem__` with `ratio_int = ratio`: every `ratio + 1`-th
/// sample is the next positive, the others walk the negatives; both lists wrap.
pub fn balanced_pick(ndx: usize, ratio: usize, positives: &[u32], negatives: &[u32]) -> u32 {
    let pos_ndx = ndx / (ratio + 1);
    if !ndx.is_multiple_of(ratio + 1) {
        negatives[(ndx - 1 - pos_ndx) % negatives.len()]
    } else {
        positives[pos_ndx % positives.len()]
    }
}

/// Chapter 14's `MalignantLunaDataset.__getitem__` with a ratio: odd
/// samples walk the malignant list, every fourth (from 0) the benign one,
/// the rest the non-nodules; each list wraps. So an epoch is half
/// malignant, a quarter benign and a quarter non-nodules.
pub fn malignancy_pick(ndx: usize, lists: &MalignancyLists) -> u32 {
    let (list, k) = if !ndx.is_multiple_of(2) {
        (&lists.malignant, ndx / 2)
    } else if ndx.is_multiple_of(4) {
        (&lists.benign, ndx / 4)
    } else {
        (&lists.non_nodules, ndx / 4)
    };
    list[k % list.len()]
}

/// The three lists chapter 14's balanced epoch walks, cache indices each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MalignancyLists {
    pub malignant: Vec<u32>,
    pub benign: Vec<u32>,
    pub non_nodules: Vec<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SamplerError {
    #[error("--balanced needs positive and negative training candidates; the training split has {positives} positives and {negatives} negatives")]
    CannotBalance { positives: usize, negatives: usize },
    #[error("--balanced with --label malignancy needs malignant and benign nodules and non-nodules in training; the training split has {malignant}, {benign} and {non_nodules}")]
    CannotBalanceMalignancy {
        malignant: usize,
        benign: usize,
        non_nodules: usize,
    },
    #[error("the training split is empty")]
    Empty,
}

/// How a balanced run draws: `--balanced`, `--balanced-sampler`,
/// `--balanced-schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Negatives per positive (before the schedule's first entry).
    pub ratio: u32,
    pub sampler: BalanceSampler,
    pub schedule: Option<BalanceSchedule>,
}

impl Balance {
    /// The book's `--balanced RATIO`: interleaved, one ratio throughout.
    pub fn ratio(ratio: u32) -> Self {
        Balance {
            ratio,
            sampler: BalanceSampler::Ratio,
            schedule: None,
        }
    }

    /// Negatives per positive at `epoch`.
    pub fn ratio_at(&self, epoch: usize) -> u32 {
        self.schedule
            .as_ref()
            .map_or(self.ratio, |s| s.ratio_at(epoch, self.ratio))
    }
}

/// The training traversal.
#[derive(Clone, Debug)]
pub struct TrainSampler {
    seed: u64,
    /// `None`: every training sample once per epoch, shuffled.
    balance: Option<Balance>,
    samples_per_epoch: usize,
    all: Vec<u32>,
    positives: Vec<u32>,
    negatives: Vec<u32>,
    /// Chapter 14's balanced epoch, which walks these instead of
    /// `balance`'s two lists.
    malignancy: Option<MalignancyLists>,
}

impl TrainSampler {
    /// `train` are cache indices in canonical order, `is_nodule` labels every
    /// cache index. `epoch_samples` overrides the balanced epoch length and
    /// caps the unbalanced one.
    pub fn new(
        train: Vec<u32>,
        is_nodule: impl Fn(u32) -> bool,
        balance: Option<Balance>,
        epoch_samples: Option<usize>,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if train.is_empty() {
            return Err(SamplerError::Empty);
        }
        let (positives, negatives): (Vec<u32>, Vec<u32>) =
            train.iter().partition(|&&i| is_nodule(i));
        let samples_per_epoch = match balance {
            Some(_) if positives.is_empty() || negatives.is_empty() => {
                return Err(SamplerError::CannotBalance {
                    positives: positives.len(),
                    negatives: negatives.len(),
                })
            }
            Some(_) => epoch_samples.unwrap_or(BALANCED_EPOCH_SAMPLES),
            None => epoch_samples.map_or(train.len(), |n| n.min(train.len())),
        };
        Ok(TrainSampler {
            seed,
            balance,
            samples_per_epoch,
            all: train,
            positives,
            negatives,
            malignancy: None,
        })
    }

    /// Chapter 14's balanced epochs over `lists` (the training split's
    /// labelled candidates): `epoch_samples` long, 200,000 by default, as
    /// a balanced chapter 12 epoch.
    pub fn malignancy(
        lists: MalignancyLists,
        epoch_samples: Option<usize>,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        let MalignancyLists {
            malignant,
            benign,
            non_nodules,
        } = &lists;
        if malignant.is_empty() || benign.is_empty() || non_nodules.is_empty() {
            return Err(SamplerError::CannotBalanceMalignancy {
                malignant: malignant.len(),
                benign: benign.len(),
                non_nodules: non_nodules.len(),
            });
        }
        Ok(TrainSampler {
            seed,
            balance: None,
            samples_per_epoch: epoch_samples.unwrap_or(BALANCED_EPOCH_SAMPLES),
            all: Vec::new(),
            positives: Vec::new(),
            negatives: Vec::new(),
            malignancy: Some(lists),
        })
    }

    pub fn samples_per_epoch(&self) -> usize {
        self.samples_per_epoch
    }

    /// Negatives per positive at `epoch` (`None` for an unbalanced run).
    pub fn ratio_at(&self, epoch: usize) -> Option<u32> {
        self.balance.as_ref().map(|b| b.ratio_at(epoch))
    }

    /// The cache indices of epoch `epoch` (1-based like the book's log), in order.
    pub fn epoch_order(&self, epoch: usize) -> Vec<u32> {
        let mut rng = epoch_rng(self.seed, epoch);
        if let Some(lists) = &self.malignancy {
            return malignancy_order(lists, self.samples_per_epoch, &mut rng);
        }
        let Some(balance) = &self.balance else {
            let mut order = self.all.clone();
            order.shuffle(&mut rng);
            order.truncate(self.samples_per_epoch);
            return order;
        };
        let ratio = balance.ratio_at(epoch) as usize;
        match balance.sampler {
            BalanceSampler::Ratio => {
                // The book shuffles the negative list, then the positive one.
                let mut negatives = self.negatives.clone();
                let mut positives = self.positives.clone();
                negatives.shuffle(&mut rng);
                positives.shuffle(&mut rng);
                (0..self.samples_per_epoch)
                    .map(|ndx| balanced_pick(ndx, ratio, &positives, &negatives))
                    .collect()
            }
            BalanceSampler::Weighted => {
                // WeightedRandomSampler with weight 1/(r+1)/P per positive
                // and r/(r+1)/N per negative: pick the class, then a member.
                let p_positive = 1.0 / (ratio as f64 + 1.0);
                (0..self.samples_per_epoch)
                    .map(|_| {
                        let class = if rng.random::<f64>() < p_positive {
                            &self.positives
                        } else {
                            &self.negatives
                        };
                        class[rng.random_range(0..class.len())]
                    })
                    .collect()
            }
        }
    }
}

/// A chapter 14 balanced epoch: the book shuffles each list at the
/// epoch's start, then interleaves them.
fn malignancy_order(lists: &MalignancyLists, samples: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let mut shuffled = lists.clone();
    shuffled.non_nodules.shuffle(rng);
    shuffled.benign.shuffle(rng);
    shuffled.malignant.shuffle(rng);
    (0..samples)
        .map(|ndx| malignancy_pick(ndx, &shuffled))
        .collect()
}

/// An RNG owned by one epoch: independent of every other epoch's draws.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// A libtorch seed for one batch of one phase, so augmentation noise does
/// not depend on how many batches ran before in this process.
pub fn batch_seed(seed: u64, epoch: usize, phase: u64, batch: usize) -> i64 {
    // SplitMix64 over the packed coordinates: distinct inputs, well-spread seeds.
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ phase.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ (batch as u64).wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_mapping_matches_hand_computed_indices() {
        // ratio 2: P N N P N N P ...; negatives continue without skipping.
        let pos = [100, 101];
        let neg = [200, 201, 202];
        let got: Vec<u32> = (0..9).map(|n| balanced_pick(n, 2, &pos, &neg)).collect();
        // ndx: 0→pos[0]; 1→neg[(1-1-0)%3]=neg0; 2→neg1; 3→pos[1]; 4→neg[(4-1-1)]=neg2;
        // 5→neg[3%3]=neg0; 6→pos[2%2]=pos0; 7→neg[(7-1-2)%3]=neg1; 8→neg2.
        assert_eq!(got, vec![100, 200, 201, 101, 202, 200, 100, 201, 202]);
        // ratio 1 alternates.
        let got: Vec<u32> = (0..6).map(|n| balanced_pick(n, 1, &pos, &neg)).collect();
        assert_eq!(got, vec![100, 200, 101, 201, 100, 202]);
    }

    fn sampler(ratio: Option<u32>, epoch_samples: Option<usize>, seed: u64) -> TrainSampler {
        balanced(ratio.map(Balance::ratio), epoch_samples, seed)
    }

    fn balanced(balance: Option<Balance>, epoch_samples: Option<usize>, seed: u64) -> TrainSampler {
        // Indices 0..4 are nodules, 4..40 are not.
        TrainSampler::new((0..40).collect(), |i| i < 4, balance, epoch_samples, seed).unwrap()
    }

    #[test]
    fn weighted_draws_positives_at_one_in_ratio_plus_one_reproducibly() {
        let weighted = |ratio, schedule: Option<&str>| Balance {
            ratio,
            sampler: BalanceSampler::Weighted,
            schedule: schedule.map(|s| s.parse().unwrap()),
        };
        let s = balanced(Some(weighted(3, None)), Some(40_000), 9);
        let order = s.epoch_order(1);
        assert_eq!(order.len(), 40_000);
        assert_eq!(
            order,
            balanced(Some(weighted(3, None)), Some(40_000), 9).epoch_order(1)
        );
        assert_ne!(order, s.epoch_order(2));
        let share = order.iter().filter(|&&i| i < 4).count() as f64 / 40_000.0;
        // Binomial sd at n = 40,000, p = 0.25 is 0.0022: 5 sd.
        assert!((share - 0.25).abs() < 0.011, "{share}");
        // With replacement: every sample is drawn, each class member alike.
        for p in 0..4u32 {
            let n = order.iter().filter(|&&i| i == p).count() as f64;
            assert!((n / 2_500.0 - 1.0).abs() < 0.1, "positive {p}: {n}");
        }
        // A schedule changes the share per epoch.
        let s = balanced(Some(weighted(1, Some("2:4"))), Some(20_000), 9);
        let share = |e| s.epoch_order(e).iter().filter(|&&i| i < 4).count() as f64 / 20_000.0;
        assert!((share(1) - 0.5).abs() < 0.02, "{}", share(1));
        assert!((share(2) - 0.2).abs() < 0.02, "{}", share(2));
        assert_eq!(s.ratio_at(1), Some(1));
        assert_eq!(s.ratio_at(5), Some(4));
    }

    #[test]
    fn a_schedule_changes_the_interleave_per_epoch() {
        let b = Balance {
            schedule: Some("1:1,3:3".parse().unwrap()),
            ..Balance::ratio(1)
        };
        let s = balanced(Some(b), Some(400), 4);
        let positives = |e| s.epoch_order(e).iter().filter(|&&i| i < 4).count();
        assert_eq!((positives(1), positives(2), positives(3)), (200, 200, 100));
        assert!(s.epoch_order(3).iter().step_by(4).all(|&i| i < 4));
    }

    #[test]
    fn balanced_epochs_follow_the_ratio_and_default_to_200000() {
        let s = sampler(Some(1), None, 7);
        assert_eq!(s.samples_per_epoch(), BALANCED_EPOCH_SAMPLES);
        let s = sampler(Some(3), Some(400), 7);
        let order = s.epoch_order(1);
        assert_eq!(order.len(), 400);
        let positives = order.iter().filter(|&&i| i < 4).count();
        assert_eq!(positives, 100);
        assert!(order.iter().step_by(4).all(|&i| i < 4));
        // Each positive appears equally often; the negatives rotate through all 36.
        for p in 0..4 {
            assert_eq!(order.iter().filter(|&&i| i == p).count(), 25);
        }
        let distinct_neg: std::collections::BTreeSet<_> =
            order.iter().filter(|&&i| i >= 4).collect();
        assert_eq!(distinct_neg.len(), 36);
    }

    #[test]
    fn orders_are_a_pure_function_of_seed_and_epoch() {
        let a = sampler(None, None, 5);
        let b = sampler(None, None, 5);
        assert_eq!(a.epoch_order(2), b.epoch_order(2));
        assert_ne!(a.epoch_order(1), a.epoch_order(2));
        assert_ne!(a.epoch_order(1), sampler(None, None, 6).epoch_order(1));
        let mut sorted = a.epoch_order(3);
        sorted.sort();
        assert_eq!(sorted, (0..40).collect::<Vec<_>>());
        assert_eq!(sampler(None, Some(10), 5).epoch_order(1).len(), 10);
        assert_eq!(sampler(None, Some(1000), 5).epoch_order(1).len(), 40);
    }

    #[test]
    fn balancing_needs_both_classes() {
        let err = TrainSampler::new(
            (0..5).collect(),
            |_| false,
            Some(Balance::ratio(1)),
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SamplerError::CannotBalance {
                positives: 0,
                negatives: 5
            }
        );
        assert_eq!(
            TrainSampler::new(vec![], |_| false, None, None, 0).unwrap_err(),
            SamplerError::Empty
        );
    }

    fn lists() -> MalignancyLists {
        MalignancyLists {
            malignant: vec![100, 101, 102],
            benign: vec![200, 201],
            non_nodules: vec![300, 301, 302, 303, 304],
        }
    }

    #[test]
    fn the_malignancy_interleave_is_the_books_half_quarter_quarter() {
        let l = lists();
        // ndx: 0→ben[0]; 1→mal[0]; 2→neg[0]; 3→mal[1]; 4→ben[1]; 5→mal[2];
        // 6→neg[1]; 7→mal[3%3]; 8→ben[2%2]; 9→mal[4%3]; 10→neg[2]; 11→mal[5%3].
        let got: Vec<u32> = (0..12).map(|n| malignancy_pick(n, &l)).collect();
        assert_eq!(
            got,
            [200, 100, 300, 101, 201, 102, 301, 100, 200, 101, 302, 102]
        );
        let s = TrainSampler::malignancy(l.clone(), Some(400), 3).unwrap();
        assert_eq!(s.samples_per_epoch(), 400);
        assert_eq!(s.ratio_at(1), None);
        let order = s.epoch_order(1);
        let count =
            |range: std::ops::Range<u32>| order.iter().filter(|i| range.contains(i)).count();
        assert_eq!(
            (count(100..200), count(200..300), count(300..400)),
            (200, 100, 100)
        );
        assert!(order
            .iter()
            .skip(1)
            .step_by(2)
            .all(|&i| (100..200).contains(&i)));
        assert!(order.iter().step_by(4).all(|&i| (200..300).contains(&i)));
        // Every member of each list comes, in a shuffled order per epoch.
        for i in l.malignant.iter().chain(&l.benign).chain(&l.non_nodules) {
            assert!(order.contains(i), "{i}");
        }
        assert_eq!(
            order,
            TrainSampler::malignancy(l.clone(), Some(400), 3)
                .unwrap()
                .epoch_order(1)
        );
        assert_ne!(order, s.epoch_order(2));
        assert_eq!(
            TrainSampler::malignancy(l, None, 3)
                .unwrap()
                .samples_per_epoch(),
            BALANCED_EPOCH_SAMPLES
        );
    }

    #[test]
    fn the_malignancy_interleave_needs_all_three_lists() {
        let err = TrainSampler::malignancy(
            MalignancyLists {
                benign: Vec::new(),
                ..lists()
            },
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SamplerError::CannotBalanceMalignancy {
                malignant: 3,
                benign: 0,
                non_nodules: 5
            }
        );
        assert!(err.to_string().contains("3, 0 and 5"), "{err}");
    }

    #[test]
    fn batch_seeds_differ_across_coordinates() {
        let base = batch_seed(1, 1, 0, 0);
        assert!(base >= 0);
        for other in [
            batch_seed(2, 1, 0, 0),
            batch_seed(1, 2, 0, 0),
            batch_seed(1, 1, 1, 0),
            batch_seed(1, 1, 0, 1),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(base, batch_seed(1, 1, 0, 0));
    }
}
