//! The one place where devices are named, found and opened: `--device auto`, `cpu`, `cuda:N`, a
//! list `cuda:0,1,3` or `cuda:all`, and what each opened device can do ([`Caps`]). Code outside
//! `src/backend/` runs work on a device through [`OnBackend`] and asks [`Caps`]; it never matches
//! on the kind of device.

use std::fmt;
use std::str::FromStr;

use super::cpu::CpuBackend;
use super::cuda::{self, CudaBackend};
use super::{Backend, KernelUse, Precision};

/// Where to run, as the user asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSelection {
    /// cuda:0 when it can be used, else the CPU.
    Auto,
    Cpu,
    /// These CUDA devices by ordinal, in the order given, without repeats.
    Cuda(Vec<usize>),
    /// Every usable CUDA device.
    CudaAll,
}

/// One device to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceId {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let unknown = || {
            format!(
                "unknown device `{s}` (expected auto, cpu, cuda, cuda:N, cuda:0,1,… or cuda:all)"
            )
        };
        match lower.as_str() {
            "auto" => return Ok(DeviceSelection::Auto),
            "cpu" => return Ok(DeviceSelection::Cpu),
            "cuda" | "gpu" => return Ok(DeviceSelection::Cuda(vec![0])),
            "cuda:all" => return Ok(DeviceSelection::CudaAll),
            _ => {}
        }
        let list = lower.strip_prefix("cuda:").ok_or_else(unknown)?;
        let mut ordinals = Vec::new();
        for part in list.split(',') {
            let n: usize = part.trim().parse().map_err(|_| unknown())?;
            if !ordinals.contains(&n) {
                ordinals.push(n);
            }
        }
        Ok(DeviceSelection::Cuda(ordinals))
    }
}

impl fmt::Display for DeviceSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelection::Auto => f.write_str("auto"),
            DeviceSelection::Cpu => f.write_str("cpu"),
            DeviceSelection::CudaAll => f.write_str("cuda:all"),
            DeviceSelection::Cuda(list) => {
                let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "cuda:{}", list.join(","))
            }
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Cpu => f.write_str("cpu"),
            DeviceId::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSelection {
    /// The devices this selection names here, one worker each, or why they cannot be had (one
    /// line). `auto` is cuda:0 when the driver, a device and this binary's kernels are all
    /// there, and otherwise the CPU without a word: no GPU is the common case.
    pub fn resolve(&self) -> Result<Vec<DeviceId>, String> {
        let gpus = || {
            cuda::usable_devices()
                .map_err(|why| format!("--device {self}: {why}; use --device cpu (or auto)"))
        };
        match self {
            DeviceSelection::Cpu => Ok(vec![DeviceId::Cpu]),
            DeviceSelection::Auto => Ok(vec![match cuda::usable_devices() {
                Ok(_) => DeviceId::Cuda(0),
                Err(_) => DeviceId::Cpu,
            }]),
            DeviceSelection::CudaAll => Ok((0..gpus()?).map(DeviceId::Cuda).collect()),
            DeviceSelection::Cuda(list) => {
                let count = gpus()?;
                match list.iter().find(|&&n| n >= count) {
                    Some(n) => Err(format!(
                        "--device {self}: no CUDA device cuda:{n} ({count} found, cuda:0 to cuda:{})",
                        count - 1
                    )),
                    None => Ok(list.iter().copied().map(DeviceId::Cuda).collect()),
                }
            }
        }
    }
}

/// What an opened device is and can do, for messages, batch sizes and the benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Caps {
    /// `cpu`, `cuda:0`.
    pub name: String,
    /// The hardware: the card's name, or the CPU's thread count.
    pub hardware: String,
    /// The GPU's name, as the driver reports it.
    pub card: Option<String>,
    /// Known peak throughput per precision (`f32`, …), TFLOP/s.
    pub peak_tflops: Vec<(&'static str, f64)>,
    /// Images per pass when `--batch-size` is not given. On the CPU a batch is no faster per
    /// image than a single image, and single images move the progress bar smoothly; a GPU needs
    /// a batch to fill its cores.
    pub preferred_batch: usize,
    /// Whether the device can time each range of a pass ([`Backend::layer_timer`]).
    pub layer_timer: bool,
    /// Memory free for a run's buffers, where it is known.
    pub memory_bytes: Option<u64>,
}

impl Caps {
    /// The peak of `precision`, TFLOP/s, when the hardware is known.
    pub fn peak(&self, precision: &str) -> Option<f64> {
        self.peak_tflops
            .iter()
            .find(|(p, _)| *p == precision)
            .map(|&(_, t)| t)
    }
}

/// Peak f32 (non-tensor-core) throughput of known cards, TFLOP/s, matched on the driver's name.
pub fn peak_f32_tflops(card: &str) -> Option<f64> {
    let c = card.to_ascii_uppercase();
    if c.contains("H200") {
        Some(66.9)
    } else if c.contains("H100") && c.contains("PCIE") {
        Some(51.2)
    } else if c.contains("H100") {
        Some(66.9)
    } else if c.contains("A100") {
        Some(19.5)
    } else {
        None
    }
}

/// Work written once against [`Backend`], run on whichever device was opened.
pub trait OnBackend {
    type Output;
    fn run<B: Backend + 'static>(self, backend: B, caps: &Caps) -> Self::Output;
}

/// An opened device.
pub enum Opened {
    Cpu(CpuBackend),
    Cuda(CudaBackend),
}

impl Opened {
    /// Opens `device`; `threads` is the CPU backend's worker count (default: one per core).
    pub fn open(device: DeviceId, threads: Option<usize>) -> Result<Opened, String> {
        match device {
            DeviceId::Cpu => CpuBackend::new(threads)
                .map(Opened::Cpu)
                .map_err(|e| e.to_string()),
            DeviceId::Cuda(n) => CudaBackend::new(n)
                .map(Opened::Cuda)
                .map_err(|e| format!("--device cuda:{n}: {e}; use --device cpu (or auto)")),
        }
    }

    /// Asks the backend for `precision`; its note when it cannot honour it.
    pub fn set_precision(&mut self, precision: Precision) -> Option<String> {
        match self {
            Opened::Cpu(cpu) => cpu.set_precision(precision),
            Opened::Cuda(gpu) => gpu.set_precision(precision),
        }
    }

    /// Per op, what the backend launches for it at its current precision.
    pub fn kernels(&self) -> Vec<KernelUse> {
        match self {
            Opened::Cpu(cpu) => cpu.kernels(),
            Opened::Cuda(gpu) => gpu.kernels(),
        }
    }

    pub fn caps(&self) -> Caps {
        match self {
            Opened::Cpu(cpu) => Caps {
                name: cpu.name(),
                hardware: format!("{} threads", cpu.threads()),
                card: None,
                peak_tflops: Vec::new(),
                preferred_batch: 1,
                layer_timer: false,
                memory_bytes: available_memory(),
            },
            Opened::Cuda(gpu) => {
                let card = gpu.device().card();
                Caps {
                    name: gpu.name(),
                    peak_tflops: peak_f32_tflops(&card)
                        .map(|t| ("f32", t))
                        .into_iter()
                        .collect(),
                    hardware: card.clone(),
                    card: Some(card),
                    preferred_batch: 16,
                    layer_timer: true,
                    memory_bytes: None,
                }
            }
        }
    }

    /// Runs `work` on this device, whichever it is.
    pub fn run<W: OnBackend>(self, work: W) -> W::Output {
        let caps = self.caps();
        match self {
            Opened::Cpu(backend) => work.run(backend, &caps),
            Opened::Cuda(backend) => work.run(backend, &caps),
        }
    }
}

/// The host memory available (Linux: `MemAvailable` of /proc/meminfo).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        let parse = |s: &str| s.parse::<DeviceSelection>();
        assert_eq!(parse("auto").unwrap(), DeviceSelection::Auto);
        assert_eq!(parse("CPU").unwrap(), DeviceSelection::Cpu);
        assert_eq!(parse("cuda").unwrap(), DeviceSelection::Cuda(vec![0]));
        assert_eq!(parse("cuda:2").unwrap(), DeviceSelection::Cuda(vec![2]));
        assert_eq!(
            parse("cuda:0,1,3,1").unwrap(),
            DeviceSelection::Cuda(vec![0, 1, 3])
        );
        assert_eq!(parse("cuda:all").unwrap(), DeviceSelection::CudaAll);
        assert_eq!(parse("cuda:0,1").unwrap().to_string(), "cuda:0,1");
        for bad in ["cuda:x", "tpu", "cuda:", "cuda:0,,1", "cuda:-1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_opens_and_describes_itself() {
        let cpu = Opened::open(DeviceId::Cpu, Some(2)).unwrap();
        let caps = cpu.caps();
        assert_eq!(caps.name, "cpu");
        assert_eq!(caps.hardware, "2 threads");
        assert_eq!(caps.card, None);
        assert_eq!(caps.preferred_batch, 1);
        assert!(caps.peak("f32").is_none() && !caps.layer_timer);
        assert_eq!(DeviceSelection::Cpu.resolve().unwrap(), [DeviceId::Cpu]);
    }

    #[test]
    fn cuda_says_why_it_cannot_be_used() {
        // No machine has this many GPUs: an error that names what is missing, never a panic.
        let why = DeviceSelection::Cuda(vec![1 << 20])
            .resolve()
            .expect_err("no such GPU");
        assert!(
            why.contains("--device cuda:1048576") && !why.contains('\n'),
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

    #[test]
    fn peaks_are_known_for_the_lent_cards() {
        assert_eq!(peak_f32_tflops("NVIDIA H100 80GB HBM3"), Some(66.9));
        assert_eq!(peak_f32_tflops("NVIDIA H100 PCIe"), Some(51.2));
        assert_eq!(peak_f32_tflops("NVIDIA H200"), Some(66.9));
        assert_eq!(peak_f32_tflops("NVIDIA A100-SXM4-80GB"), Some(19.5));
        assert_eq!(peak_f32_tflops("Tesla T4"), None);
    }
}
