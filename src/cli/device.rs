//! `--device` and `--threads` as the command line gives them to the library's device factory
//! ([`sglrp::backend::open`]), and the engine's workers on the devices opened.

use std::sync::Mutex;

use sglrp::backend::Precision;
use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::cuda::CudaBackend;
use sglrp::backend::open::{Caps, DeviceId, OnBackend, Opened};

pub use sglrp::backend::open::{DeviceSelection as Device, cuda_status};

/// `--threads` beyond this many per core only starves the machine.
const THREADS_PER_CORE: usize = 4;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--threads`, checked against the cores of this machine.
pub fn check_threads(threads: Option<u16>) -> Result<Option<usize>, String> {
    let Some(n) = threads.map(usize::from) else {
        return Ok(None);
    };
    let (cores, most) = (cores(), THREADS_PER_CORE * cores());
    if n > most {
        return Err(format!(
            "--threads {n}: at most {THREADS_PER_CORE} per core, {most} on this machine's {cores} cores"
        ));
    }
    Ok(Some(n))
}

/// The CPU backend with `threads` workers (default: one per core); the same count is given to
/// the global rayon pool that decodes and renders images.
pub fn cpu_backend(threads: Option<u16>) -> Result<CpuBackend, String> {
    let threads = check_threads(threads)?;
    if let Some(n) = threads {
        // Fails only if the global pool was already built, which leaves the default: harmless.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    CpuBackend::new(threads).map_err(|e| e.to_string())
}

/// The CUDA backend on GPU `ordinal` (`sglrp verify`, which compares one GPU with the CPU),
/// or why it cannot be had, in one line.
pub fn cuda_backend(ordinal: usize) -> Result<CudaBackend, String> {
    let count = sglrp::backend::cuda::usable_devices()?;
    if ordinal >= count {
        return Err(format!(
            "no CUDA device cuda:{ordinal} ({count} found, cuda:0 to cuda:{})",
            count - 1
        ));
    }
    CudaBackend::new(ordinal).map_err(|e| e.to_string())
}

/// Every device `--device` names, opened: a run's workers, one per device.
pub struct Devices {
    opened: Mutex<Vec<Option<Opened>>>,
    /// The first device's capabilities (every device of a run is of one kind).
    pub caps: Caps,
    pub names: Vec<String>,
}

impl Devices {
    /// Opens the devices of `device` at `precision`, or says in one line why they cannot be
    /// had. What a backend says of the precision (the CPU ignores it) is printed once.
    pub fn open(
        device: &Device,
        threads: Option<u16>,
        precision: Precision,
    ) -> Result<Devices, String> {
        let threads = check_threads(threads)?;
        if let Some(n) = threads {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
        let ids = device.resolve()?;
        let mut opened = Vec::with_capacity(ids.len());
        for &id in &ids {
            match (Opened::open(id, threads), device) {
                (Ok(d), _) => opened.push(d),
                // A GPU that is there but does not open is worth a word before the slow way.
                (Err(why), Device::Auto) => {
                    eprintln!("warning: --device auto: cannot open {id} ({why})");
                    eprintln!("warning: running on the CPU");
                    opened.push(Opened::open(DeviceId::Cpu, threads)?);
                }
                (Err(why), _) => return Err(why),
            }
        }
        let mut notes: Vec<String> = opened
            .iter_mut()
            .filter_map(|d| d.set_precision(precision))
            .collect();
        notes.dedup();
        for note in notes {
            eprintln!("note: {note}");
        }
        let caps = opened[0].caps();
        let names = opened.iter().map(|d| d.caps().name).collect();
        Ok(Devices {
            opened: Mutex::new(opened.into_iter().map(Some).collect()),
            caps,
            names,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// `--batch-size`, or the device's preferred batch.
    pub fn batch_size(&self, asked: Option<usize>) -> usize {
        asked.unwrap_or(self.caps.preferred_batch)
    }

    /// Runs `work` on device `worker` (once per device: the engine's `open`).
    pub fn run<W: OnBackend>(&self, worker: usize, work: W) -> Result<W::Output, String> {
        let device = self
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(worker)
            .and_then(Option::take)
            .ok_or_else(|| format!("device {worker} was already taken"))?;
        Ok(device.run(work))
    }
}

/// Threads that decode and write beside the devices: every core, at least two.
pub fn host_threads() -> usize {
    cores().max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_bounded_by_the_cores() {
        assert_eq!(check_threads(None).unwrap(), None);
        assert_eq!(check_threads(Some(1)).unwrap(), Some(1));
        let why = check_threads(Some(u16::MAX)).unwrap_err();
        assert!(
            why.starts_with("--threads 65535: at most 4 per core"),
            "{why}"
        );
    }
}
