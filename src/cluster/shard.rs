//! `--shard K/N`: the K-th of N parts of a run's inputs, the same part whatever order the inputs
//! come in, so that N processes (a Slurm array, README "Clusters (Slurm)") split one run between
//! them without talking to each other.
//!
//! The inputs are ordered by a hash of each one's identity (a stable name such as an image's key
//! or a sample's content key) and dealt out like cards: part K takes positions K−1, K−1+N, … of
//! that order. The parts are disjoint, together hold every input, and differ in size by at most
//! one. The hash spreads neighbouring inputs (one folder, one class) over the parts.

use std::fmt;
use std::str::FromStr;

/// Part `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Part `index` of `count`, `1 ≤ index ≤ count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards N must be at least 1".into());
        }
        if index == 0 || index > count {
            return Err(format!("shard {index} does not lie in 1..={count}"));
        }
        Ok(Shard { index, count })
    }

    /// The whole run as one part.
    pub fn whole() -> Shard {
        Shard { index: 1, count: 1 }
    }

    /// 1-based.
    pub fn index(self) -> usize {
        self.index
    }

    pub fn count(self) -> usize {
        self.count
    }

    /// Whether this is the whole run (`1/1`).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// `K-of-N`, as shard file names carry it.
    pub fn file_tag(self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// Reads a `K-of-N` tag back (`None` for anything else).
    pub fn from_file_tag(tag: &str) -> Option<Shard> {
        let (k, n) = tag.split_once("-of-")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(k) || !digits(n) {
            return None;
        }
        Shard::new(k.parse().ok()?, n.parse().ok()?).ok()
    }

    /// The positions in `ids` of this part's inputs, in their original order.
    pub fn select<S: AsRef<str>>(self, ids: &[S]) -> Vec<usize> {
        let mut order: Vec<(u64, &str, usize)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (fnv1a(id.as_ref().as_bytes()), id.as_ref(), i))
            .collect();
        // Equal ids are equal inputs: which copy goes where does not change any part's content.
        order.sort_unstable();
        let mut mine: Vec<usize> = order
            .iter()
            .skip(self.index - 1)
            .step_by(self.count)
            .map(|&(_, _, i)| i)
            .collect();
        mine.sort_unstable();
        mine
    }

    /// This part of `items`, identified by `id`, in their original order.
    pub fn filter<T, S: AsRef<str>>(self, items: Vec<T>, id: impl Fn(&T) -> S) -> Vec<T> {
        if self.is_whole() {
            return items;
        }
        let ids: Vec<S> = items.iter().map(&id).collect();
        let keep = self.select(&ids);
        let mut keep = keep.into_iter().peekable();
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.next_if_eq(i).is_some())
            .map(|(_, item)| item)
            .collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N` with `1 ≤ K ≤ N`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let expected = || format!("expected K/N with 1 ≤ K ≤ N (such as 2/8), got '{text}'");
        let (k, n) = text.trim().split_once('/').ok_or_else(expected)?;
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| expected());
        let (k, n) = (number(k)?, number(n)?);
        Shard::new(k, n).map_err(|e| format!("{e} ({})", expected()))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// 64-bit FNV-1a: the same on every build and platform, so every process of a run agrees.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
