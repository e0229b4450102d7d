//! `--device`: parsing, the devices found, and the one place where a backend is chosen.

use std::fmt;
use std::str::FromStr;

use sglrp::backend::Backend;
use sglrp::backend::cpu::CpuBackend;

/// Where to run, as the user asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The best device available (today: the CPU).
    Auto,
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => lower
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    format!("unknown device `{s}` (expected auto, cpu, cuda or cuda:N)")
                }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// What the CUDA side of this build can do, in one line.
pub fn cuda_status() -> &'static str {
    "not available: this build of sglrp has no CUDA backend yet"
}

/// The CPU backend with `threads` workers (default: one per core); the same count is given to
/// the global rayon pool that decodes and renders images.
pub fn cpu_backend(threads: Option<u16>) -> Result<CpuBackend, String> {
    if let Some(n) = threads {
        // Fails only if the global pool was already built, which leaves the default: harmless.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global();
    }
    CpuBackend::new(threads.map(usize::from)).map_err(|e| e.to_string())
}

/// Images per pass when `--batch-size` is not given. On the CPU a batch is no faster per image
/// than a single image, and single images move the progress bar smoothly.
pub fn default_batch_size(_device: Device) -> usize {
    1
}

/// A backend chosen at run time.
pub enum Chosen {
    Cpu(CpuBackend),
}

/// Work written once against [`Backend`], run on whichever backend was chosen.
pub trait OnBackend {
    type Output;
    fn run<B: Backend>(self, backend: B) -> Self::Output;
}

impl Chosen {
    /// Runs `work` on the chosen backend: the one place where the CLI tells backends apart.
    pub fn run<W: OnBackend>(self, work: W) -> W::Output {
        match self {
            Chosen::Cpu(backend) => work.run(backend),
        }
    }
}

/// The backend for `device`: today the CPU for `auto` and `cpu`, and a clear refusal for CUDA.
pub fn select(device: Device, threads: Option<u16>) -> Result<Chosen, String> {
    match device {
        Device::Auto | Device::Cpu => cpu_backend(threads).map(Chosen::Cpu),
        Device::Cuda(_) => Err(format!(
            "--device {device}: {}; use --device cpu (or auto)",
            cuda_status()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:2".parse::<Device>().unwrap(), Device::Cuda(2));
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
    }
}
