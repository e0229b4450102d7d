//! Presets (docs/method.md §Presets): the bias mode, stabiliser and head combination that reproduce the paper,
//! Zennit 0.5.1 or the paper's iNNvestigate code.

use std::fmt;
use std::str::FromStr;

use crate::backend::{BiasMode, Stabilizer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preset {
    /// The paper's Eq. 1: no bias, ε = 1e-6, one pass with the signed head.
    #[default]
    Paper,
    /// Zennit 0.5.1: ZBox first, ZPlus elsewhere (β = max(b, 0)), ε = 1e-6, one pass.
    Zennit,
    /// uchidalab/softmaxgradient-lrp on iNNvestigate 1.0.8.3: β = b, zero denominators become
    /// 1e-7, target and others passes combined by rescaling.
    Innvestigate,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Paper, Preset::Zennit, Preset::Innvestigate];

    pub fn bias(self) -> BiasMode {
        match self {
            Preset::Paper => BiasMode::None,
            Preset::Zennit => BiasMode::Positive,
            Preset::Innvestigate => BiasMode::Full,
        }
    }

    pub fn stabilizer(self) -> Stabilizer {
        match self {
            Preset::Paper | Preset::Zennit => Stabilizer::Epsilon(1e-6),
            Preset::Innvestigate => Stabilizer::ZeroTo(1e-7),
        }
    }

    /// Whether each explanation takes a target and an others pass (docs/method.md §Presets).
    pub fn two_pass(self) -> bool {
        self == Preset::Innvestigate
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Zennit => "zennit",
            Preset::Innvestigate => "innvestigate",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown preset `{s}` (expected paper, zennit or innvestigate)"))
    }
}
