//! `--shard K/N`: one machine's share of a build spread over N machines
//! writing into one folder on a shared file system.
//!
//! A scan belongs to the shard its series uid hashes to, and to no other,
//! whatever else is in the data folder: two shards started from different
//! views of the inputs (a scan added between them) still never write the
//! same file. A hash of the uid rather than a division of the sorted list
//! for the same reason; with hundreds of scans the shares are even to a
//! few scans.

use std::fmt;
use std::str::FromStr;

/// Shard `index` (1-based, as users and job arrays count) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Whether this shard builds the scan of `series_uid`.
    pub fn owns(&self, series_uid: &str) -> bool {
        let hash = blake3::hash(series_uid.as_bytes());
        let head = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        head % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// What a shard calls itself in progress lines and lock refusals.
    pub fn holder(&self, command: &str) -> String {
        format!("{command} --shard {self}")
    }
}

/// What a shard says when its share is done.
pub const NOT_SEALED: &str =
    "  not sealed: once every shard is done, run the same command without --shard to seal the cache";

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("'{s}': expected K/N with 1 ≤ K ≤ N, e.g. 2/8");
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let index: u32 = k.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if index == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_anything_else() {
        let s: Shard = "2/8".parse().unwrap();
        assert_eq!(s.to_string(), "2/8");
        for bad in ["0/3", "4/3", "3", "a/3", "1/0", "", "1/2/3", "-1/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("expected K/N"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_uid_has_exactly_one_owner_and_the_shares_are_even() {
        let count = 7;
        let shards: Vec<Shard> = (1..=count)
            .map(|k| format!("{k}/{count}").parse().unwrap())
            .collect();
        let mut shares = vec![0usize; count];
        for n in 0..7000 {
            let uid = format!("1.3.6.1.4.1.14519.5.2.1.6279.6001.{n}");
            let owners: Vec<usize> = (0..count).filter(|&k| shards[k].owns(&uid)).collect();
            assert_eq!(owners.len(), 1, "{uid}: {owners:?}");
            shares[owners[0]] += 1;
        }
        // 1000 expected each; ±10% is over 3 standard deviations.
        assert!(
            shares.iter().all(|&n| (900..=1100).contains(&n)),
            "{shares:?}"
        );
        let only: Shard = "1/1".parse().unwrap();
        assert!(only.owns("anything"));
    }
}
