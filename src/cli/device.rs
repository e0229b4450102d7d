//! `--device`: parsing, the devices found, and the one place where a backend is chosen.

use std::fmt;
use std::str::FromStr;

use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::cuda::{self, CudaBackend};
use sglrp::backend::{Backend, Precision};

/// Where to run, as the user asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// cuda:0 when it can be used, else the CPU.
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

/// What the CUDA side of this binary can do here, in one line (`sglrp info`).
pub fn cuda_status() -> String {
    match cuda::usable_devices() {
        Ok(count) => format!(
            "available: {}",
            (0..count)
                .map(|i| format!("cuda:{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(why) => format!("not available: {why}"),
    }
}

/// The CUDA backend on GPU `ordinal`, or why it cannot be had, in one line.
pub fn cuda_backend(ordinal: usize) -> Result<CudaBackend, String> {
    let count = cuda::usable_devices()?;
    if ordinal >= count {
        return Err(format!(
            "no CUDA device cuda:{ordinal} ({count} found, cuda:0 to cuda:{})",
            count - 1
        ));
    }
    CudaBackend::new(ordinal).map_err(|e| e.to_string())
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

/// A backend chosen at run time.
pub enum Chosen {
    Cpu(CpuBackend),
    Cuda(CudaBackend),
}

/// Work written once against [`Backend`], run on whichever backend was chosen.
pub trait OnBackend {
    type Output;
    fn run<B: Backend>(self, backend: B) -> Self::Output;
}

impl Chosen {
    /// Runs `work` on the chosen backend, whichever it is.
    pub fn run<W: OnBackend>(self, work: W) -> W::Output {
        match self {
            Chosen::Cpu(backend) => work.run(backend),
            Chosen::Cuda(backend) => work.run(backend),
        }
    }

    /// Images per pass when `--batch-size` is not given. On the CPU a batch is no faster per
    /// image than a single image, and single images move the progress bar smoothly; a GPU needs
    /// a batch to fill its cores.
    pub fn default_batch_size(&self) -> usize {
        match self {
            Chosen::Cpu(_) => 1,
            Chosen::Cuda(_) => 16,
        }
    }
}

/// The backend for `device` at `precision`. `auto` takes cuda:0 when the driver, a device and
/// this binary's kernels are all there, and otherwise the CPU without a word: no GPU is the
/// common case. What the backend says of the precision (the CPU ignores it; a GPU may lack some
/// kernels for it) is printed once, as a note.
pub fn select(
    device: Device,
    threads: Option<u16>,
    precision: Precision,
) -> Result<Chosen, String> {
    let mut chosen = select_device(device, threads)?;
    let note = match &mut chosen {
        Chosen::Cpu(b) => b.set_precision(precision),
        Chosen::Cuda(b) => b.set_precision(precision),
    };
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    Ok(chosen)
}

fn select_device(device: Device, threads: Option<u16>) -> Result<Chosen, String> {
    match device {
        Device::Cpu => cpu_backend(threads).map(Chosen::Cpu),
        Device::Auto if cuda::usable_devices().is_ok() => match cuda_backend(0) {
            Ok(gpu) => Ok(Chosen::Cuda(gpu)),
            // A GPU that is there but does not open is worth a word before the slow way.
            Err(why) => {
                eprintln!("warning: --device auto: cannot open cuda:0 ({why}); running on the CPU");
                cpu_backend(threads).map(Chosen::Cpu)
            }
        },
        Device::Auto => cpu_backend(threads).map(Chosen::Cpu),
        Device::Cuda(n) => cuda_backend(n)
            .map(Chosen::Cuda)
            .map_err(|why| format!("--device {device}: {why}; use --device cpu (or auto)")),
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

    #[test]
    fn cuda_says_why_it_cannot_be_used() {
        // No machine has this many GPUs: an error that names what is missing, never a panic.
        let why = cuda_backend(1 << 20).err().expect("no such GPU");
        assert!(
            why.contains("cuda:1048576") || why.contains("driver") || why.contains("kernels"),
            "{why}"
        );
        let status = cuda_status();
        assert_eq!(
            status.starts_with("available: cuda:0"),
            cuda::usable_devices().is_ok(),
            "{status}"
        );
        assert!(!status.contains('\n'), "one line: {status}");
    }
}
