//! A seeded mutation fuzzer for the parsers of outside data (weights files, images, manifests,
//! VOC XML, class files), on stable Rust: each target takes bytes, and every mutation of its seed
//! corpus must leave it without a panic. A failing input is written to the target directory and
//! the panic names its seed, iteration and file, so that it can be replayed.
//!
//! `cargo test` runs a bounded number of iterations per target (`SGLRP_FUZZ_ITERATIONS`, default
//! [`DEFAULT_ITERATIONS`]); a long run sets `SGLRP_FUZZ_SECONDS` instead (README, "Fuzzing").
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Iterations per target in a plain `cargo test`.
pub const DEFAULT_ITERATIONS: u64 = 300;

/// Inputs grow by mutation up to this size; parsers of larger inputs are not what is fuzzed.
pub const MAX_LEN: usize = 1 << 16;

/// Values that often sit on a parser's edges.
const INTERESTING_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'"', b'\n', b'-'];
const INTERESTING_NUMBERS: [&str; 8] = [
    "0",
    "-1",
    "1e309",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "NaN",
    "65536",
];

/// xorshift64*, seeded: the whole run is a function of the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One random edit of `data` (the corpus supplies material for splices).
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(if len == 0 { 2 } else { 9 }) {
        // Insert random bytes.
        0 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        // Splice a piece of another corpus entry in.
        1 => {
            let other = &corpus[rng.below(corpus.len())];
            if !other.is_empty() {
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from) + 1;
                let at = rng.below(len + 1);
                data.splice(at..at, other[from..to].iter().copied());
            }
        }
        // Flip one bit.
        2 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        // An interesting byte.
        3 => {
            let at = rng.below(len);
            data[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
        }
        // Delete a range.
        4 => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(16)).min(len);
            data.drain(from..to);
        }
        // Duplicate a range.
        5 => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(64)).min(len);
            let piece: Vec<u8> = data[from..to].to_vec();
            data.splice(to..to, piece);
        }
        // Truncate.
        6 => data.truncate(rng.below(len)),
        // Replace a run of ASCII digits by an extreme number.
        7 => {
            let start = rng.below(len);
            if let Some(from) = (start..len).find(|&i| data[i].is_ascii_digit()) {
                let to = (from..len)
                    .find(|&i| !data[i].is_ascii_digit())
                    .unwrap_or(len);
                let number = INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())];
                data.splice(from..to, number.bytes());
            }
        }
        // Overwrite a little-endian u64 with an extreme value (binary headers' lengths).
        _ => {
            if len >= 8 {
                let at = rng.below(len - 7);
                let value = match rng.below(4) {
                    0 => u64::MAX,
                    1 => u32::MAX as u64 + 1,
                    2 => (len as u64) * 2,
                    _ => rng.next() >> rng.below(64),
                };
                data[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
    data.truncate(MAX_LEN);
}

/// How long a target runs: a number of iterations, or (for long runs) a time.
fn budget() -> (u64, Option<Duration>) {
    let seconds = std::env::var("SGLRP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let iterations = std::env::var("SGLRP_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    match seconds {
        Some(s) => (u64::MAX, Some(Duration::from_secs(s))),
        None => (iterations, None),
    }
}

/// Runs `target` on the corpus and on mutations of it (1 to 4 edits each), seeded by `seed`.
/// Panics — naming the seed, the iteration and a file holding the input — if `target` panics.
/// Returns the number of inputs tried.
pub fn fuzz(name: &str, seed: u64, corpus: &[Vec<u8>], target: impl Fn(&[u8])) -> u64 {
    assert!(!corpus.is_empty(), "{name}: empty seed corpus");
    let (iterations, time) = budget();
    let start = Instant::now();
    let mut rng = Rng::new(seed);
    let mut tried = 0u64;
    let run = |input: &[u8], iteration: u64| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let path = failure_path(name, seed, iteration);
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target {name} panicked (seed {seed:#x}, iteration {iteration}); input saved \
                 to {}",
                path.display()
            );
        }
    };
    for (i, input) in corpus.iter().enumerate() {
        run(input, i as u64);
        tried += 1;
    }
    for iteration in 0..iterations {
        if time.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut input, corpus);
        }
        run(&input, corpus.len() as u64 + iteration);
        tried += 1;
    }
    tried
}

fn failure_path(name: &str, seed: u64, iteration: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-{seed:x}-{iteration}.bin"))
}
