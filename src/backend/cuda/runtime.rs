//! The runtime around the kernels (docs/gpu.md §Runtime): the device memory arena every
//! [`Device::alloc`] goes through, the streams work is queued on, and, on top of the [`Device`]
//! trait so that the emulator checks them, CUDA graphs per pass shape ([`Graphs`]) and a
//! pipeline that overlaps the copies of neighbouring batches with the work of one ([`Pipeline`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::device::Device;
use super::gpu::{GpuBackend, GpuBuf};
use crate::backend::PassKey;
use crate::error::{Error, Result};

fn error(op: &str, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "cuda",
        op: op.into(),
        message: message.into(),
    }
}

/// The device's queues of work. Work on one stream runs in order; across streams only the events
/// of [`Device::record`] and [`Device::wait`] order it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Kernels, allocations, device-to-device copies and the blocking up/downloads.
    Compute,
    /// Pinned host → device copies of the next batch.
    Upload,
    /// Device → pinned host copies of the previous batch.
    Download,
}

/// What the arena has done since the device was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Allocations that went to the driver.
    pub driver_allocs: u64,
    /// Allocations served from a freed buffer.
    pub reuses: u64,
    /// Words held from the driver, in use or free.
    pub held_words: u64,
}

/// The words an allocation of `words` takes in the arena: rounded up to one of 8 steps per power
/// of two (at most 12.5 % more), 64 words at least, so that buffers of nearby sizes share a class.
pub fn size_class(words: usize) -> usize {
    let w = words.max(64);
    let octave = usize::BITS - 1 - w.leading_zeros();
    let step = 1usize << (octave - 3);
    w.div_ceil(step) * step
}

struct PoolState<M> {
    free: HashMap<usize, Vec<M>>,
    /// While a graph is captured: the buffers freed since capture began, reusable within the
    /// capture only, because the graph's kernels write them on every replay.
    captured: Option<HashMap<usize, Vec<M>>>,
    stats: PoolStats,
}

fn lock<M>(state: &Mutex<PoolState<M>>) -> MutexGuard<'_, PoolState<M>> {
    // A panic while the lock was held cannot leave the free lists inconsistent.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The device memory arena: freed buffers go to a free list per [`size_class`] and serve later
/// allocations of that class, so that after the first batch of a shape no allocation reaches the
/// driver. Buffers are freed by dropping their [`Pooled`] handle. Reuse is safe across the
/// compute stream's work because every use of an arena buffer is queued on that one stream.
pub struct Pool<M> {
    state: Arc<Mutex<PoolState<M>>>,
}

impl<M> Default for Pool<M> {
    fn default() -> Self {
        Pool {
            state: Arc::new(Mutex::new(PoolState {
                free: HashMap::new(),
                captured: None,
                stats: PoolStats::default(),
            })),
        }
    }
}

/// A buffer of the arena; dropping it returns the buffer to its free list.
pub struct Pooled<M> {
    mem: Option<M>,
    class: usize,
    state: Arc<Mutex<PoolState<M>>>,
}

impl<M> std::ops::Deref for Pooled<M> {
    type Target = M;
    fn deref(&self) -> &M {
        self.mem
            .as_ref()
            .expect("a pooled buffer holds memory until dropped")
    }
}

impl<M> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            let mut state = lock(&self.state);
            let state = &mut *state;
            let list = state.captured.as_mut().unwrap_or(&mut state.free);
            list.entry(self.class).or_default().push(mem);
        }
    }
}

/// The buffers a captured graph writes, held until the graph is dropped.
pub struct Retained<M> {
    mems: Vec<(usize, M)>,
    state: Arc<Mutex<PoolState<M>>>,
}

impl<M> Drop for Retained<M> {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        for (class, mem) in self.mems.drain(..) {
            state.free.entry(class).or_default().push(mem);
        }
    }
}

impl<M> Pool<M> {
    /// A buffer of at least `words` words and whether it was reused (its contents are stale).
    /// `fresh(n)` allocates `n` words from the driver; when it fails, the free buffers are
    /// released and it is tried once more.
    pub fn take(
        &self,
        words: usize,
        fresh: impl Fn(usize) -> Result<M>,
    ) -> Result<(Pooled<M>, bool)> {
        let class = size_class(words);
        let wrap = |mem| Pooled {
            mem: Some(mem),
            class,
            state: self.state.clone(),
        };
        {
            let mut state = lock(&self.state);
            let state = &mut *state;
            let hit = match state.captured.as_mut() {
                Some(captured) => captured.get_mut(&class).and_then(Vec::pop),
                None => None,
            }
            .or_else(|| state.free.get_mut(&class).and_then(Vec::pop));
            if let Some(mem) = hit {
                state.stats.reuses += 1;
                return Ok((wrap(mem), true));
            }
            if state.captured.is_some() {
                return Err(error(
                    "graph capture",
                    format!(
                        "{words} words were allocated while capturing a graph; run the pass \
                         once before capturing it so that the arena holds its buffers"
                    ),
                ));
            }
        }
        let mem = match fresh(class) {
            Ok(mem) => mem,
            Err(_) => {
                self.release_free();
                fresh(class)?
            }
        };
        let mut state = lock(&self.state);
        state.stats.driver_allocs += 1;
        state.stats.held_words += class as u64;
        Ok((wrap(mem), false))
    }

    /// Returns the free buffers to the driver.
    pub fn release_free(&self) {
        let free = {
            let mut state = lock(&self.state);
            let free = std::mem::take(&mut state.free);
            let released: usize = free.iter().map(|(class, v)| class * v.len()).sum();
            state.stats.held_words -= released as u64;
            free
        };
        drop(free);
    }

    pub fn stats(&self) -> PoolStats {
        lock(&self.state).stats
    }

    /// From now on, freed buffers are kept for the graph being captured.
    pub fn begin_capture(&self) {
        lock(&self.state).captured = Some(HashMap::new());
    }

    /// Ends a capture: the buffers freed during it, for the graph to hold.
    pub fn end_capture(&self) -> Retained<M> {
        let captured = lock(&self.state).captured.take().unwrap_or_default();
        Retained {
            mems: captured
                .into_iter()
                .flat_map(|(class, v)| v.into_iter().map(move |m| (class, m)))
                .collect(),
            state: self.state.clone(),
        }
    }
}

struct Captured<D: Device> {
    graph: D::Graph,
    inputs: Vec<GpuBuf<D>>,
    outputs: Vec<GpuBuf<D>>,
}

/// One CUDA graph per [`PassKey`], captured on the first call with that key and replayed after:
/// a pass of a few hundred launches becomes one launch. A graph reads its input from a buffer of
/// its own (the caller's input is copied in) and writes outputs it owns (copied out), so its
/// pointers stay the same across replays; it also reads whatever else the pass read when it was
/// captured (the weights), which must outlive it.
pub struct Graphs<D: Device> {
    cache: HashMap<PassKey, Captured<D>>,
    /// The keys whose pass ran once without a graph ([`Graphs::seen`]).
    seen: HashSet<PassKey>,
    captures: usize,
    replays: usize,
}

impl<D: Device> Default for Graphs<D> {
    fn default() -> Self {
        Graphs {
            cache: HashMap::new(),
            seen: HashSet::new(),
            captures: 0,
            replays: 0,
        }
    }
}

impl<D: Device> Graphs<D> {
    /// Graphs captured so far.
    pub fn captures(&self) -> usize {
        self.captures
    }

    /// Replays so far.
    pub fn replays(&self) -> usize {
        self.replays
    }

    /// Whether a graph of `key` is held.
    pub fn holds(&self, key: &PassKey) -> bool {
        self.cache.contains_key(key)
    }

    /// Graphs held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Drops every graph (and so the buffers they hold).
    pub fn clear(&mut self) {
        self.cache.clear();
        self.seen.clear();
    }

    /// Whether `key` was seen before; records it. A caller runs a key's first pass without a
    /// graph: what that pass sets up once (weights packed for the tensor cores) allocates and
    /// frees in its own pattern, and only a later pass shows the buffers a capture takes.
    pub fn seen(&mut self, key: PassKey) -> bool {
        !self.seen.insert(key)
    }

    /// `pass(b, inputs)` through the graph of `key`. The first call with a key runs the pass
    /// once directly (so that the arena holds every buffer it takes), then captures it; every
    /// call replays the graph. `pass` must queue the same work for all inputs of the key's
    /// sizes and must not download.
    pub fn run(
        &mut self,
        b: &GpuBackend<D>,
        key: PassKey,
        inputs: &[GpuBuf<D>],
        pass: impl Fn(&GpuBackend<D>, &[GpuBuf<D>]) -> Result<Vec<GpuBuf<D>>>,
    ) -> Result<Vec<GpuBuf<D>>> {
        let c = match self.cache.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                let stable = inputs
                    .iter()
                    .map(|x| {
                        let own = b.alloc_buf(x.len())?;
                        b.copy_buf(&own, x)?;
                        Ok(own)
                    })
                    .collect::<Result<Vec<_>>>()?;
                drop(pass(b, &stable)?);
                b.device().begin_capture()?;
                let outputs = pass(b, &stable);
                let graph = b.device().end_capture();
                self.captures += 1;
                slot.insert(Captured {
                    outputs: outputs?,
                    graph: graph?,
                    inputs: stable,
                })
            }
        };
        let sizes = |v: &[GpuBuf<D>]| v.iter().map(GpuBuf::len).collect::<Vec<_>>();
        if sizes(&c.inputs) != sizes(inputs) {
            return Err(error(
                "graph replay",
                format!(
                    "inputs of {:?} values, the graph of {key:?} was captured for {:?}",
                    sizes(inputs),
                    sizes(&c.inputs)
                ),
            ));
        }
        for (own, x) in c.inputs.iter().zip(inputs) {
            b.copy_buf(own, x)?;
        }
        b.device().replay(&c.graph)?;
        self.replays += 1;
        c.outputs
            .iter()
            .map(|o| {
                let out = b.alloc_buf(o.len())?;
                b.copy_buf(&out, o)?;
                Ok(out)
            })
            .collect()
    }
}

struct Slot<D: Device> {
    /// Per input: pinned host memory, and its device buffer.
    hosts: Vec<D::Host>,
    bufs: Vec<GpuBuf<D>>,
    /// Recorded on the compute stream after the last pass that read the slot's buffers.
    consumed: Option<D::Event>,
}

/// The outputs of one submitted batch, on their way to pinned host memory.
pub struct Ticket<D: Device> {
    outputs: Vec<(GpuBuf<D>, D::Host)>,
    done: D::Event,
}

/// Batches through the device with their copies overlapped: `depth` input slots (pinned host
/// buffers + device buffers) used in turn, so that while batch i computes, batch i+1 uploads on
/// the upload stream and batch i−1 downloads on the download stream. Submit batch i+1 before
/// finishing batch i to get the overlap. Events order the streams: upload(i) waits until the
/// pass that last read its slot is done, the pass waits for upload(i), download(i) waits for
/// the pass.
pub struct Pipeline<D: Device> {
    slots: Vec<Slot<D>>,
    next: usize,
    hosts: Vec<D::Host>,
}

impl<D: Device> Pipeline<D> {
    /// A pipeline of `depth` (≥ 1) slots; each takes the size of what is first copied into it.
    pub fn new(depth: usize) -> Result<Self> {
        if depth == 0 {
            return Err(error("pipeline", "depth must be at least 1"));
        }
        Ok(Pipeline {
            slots: (0..depth)
                .map(|_| Slot {
                    hosts: Vec::new(),
                    bufs: Vec::new(),
                    consumed: None,
                })
                .collect(),
            next: 0,
            hosts: Vec::new(),
        })
    }

    /// Queues a batch: the upload of `inputs`, `pass` on the uploaded buffers, and the download
    /// of the buffers `pass` returns. Returns at once; [`Self::finish`] waits for the results.
    pub fn submit(
        &mut self,
        b: &GpuBackend<D>,
        inputs: &[&[f32]],
        pass: impl FnOnce(&GpuBackend<D>, &[GpuBuf<D>]) -> Result<Vec<GpuBuf<D>>>,
    ) -> Result<Ticket<D>> {
        let dev = b.device();
        let depth = self.slots.len();
        let slot = &mut self.slots[self.next];
        self.next = (self.next + 1) % depth;
        if let Some(consumed) = slot.consumed.take() {
            dev.wait(Stream::Upload, &consumed)?;
        }
        let fits = slot.bufs.len() == inputs.len()
            && slot
                .bufs
                .iter()
                .zip(inputs)
                .all(|(buf, x)| buf.len() == x.len());
        if !fits {
            // Buffers for new sizes; the old ones go once the upload stream has waited.
            slot.hosts = inputs
                .iter()
                .map(|x| dev.alloc_host(x.len()))
                .collect::<Result<_>>()?;
            slot.bufs = inputs
                .iter()
                .map(|x| b.alloc_buf(x.len()))
                .collect::<Result<_>>()?;
            // Allocations are ordered on the compute stream: the uploads wait for them.
            dev.wait(Stream::Upload, &dev.record(Stream::Compute)?)?;
        }
        for ((host, buf), x) in slot.hosts.iter_mut().zip(&slot.bufs).zip(inputs) {
            dev.host_mut(host)?[..x.len()].copy_from_slice(x);
            dev.copy_to_device(buf.mem(), host, x.len())?;
        }
        let uploaded = dev.record(Stream::Upload)?;
        dev.wait(Stream::Compute, &uploaded)?;
        let outputs = pass(b, &slot.bufs);
        let computed = dev.record(Stream::Compute)?;
        dev.wait(Stream::Download, &computed)?;
        slot.consumed = Some(computed);
        let mut pending = Vec::new();
        for out in outputs? {
            let mut host = match self.hosts.iter().position(|h| dev.host_len(h) >= out.len()) {
                Some(i) => self.hosts.swap_remove(i),
                None => dev.alloc_host(out.len())?,
            };
            dev.copy_to_host(&mut host, out.mem(), out.len())?;
            pending.push((out, host));
        }
        Ok(Ticket {
            outputs: pending,
            done: dev.record(Stream::Download)?,
        })
    }

    /// Waits for a submitted batch and returns its outputs.
    pub fn finish(&mut self, b: &GpuBackend<D>, ticket: Ticket<D>) -> Result<Vec<Vec<f32>>> {
        let dev = b.device();
        dev.synchronize_event(&ticket.done)?;
        let mut results = Vec::with_capacity(ticket.outputs.len());
        for (out, mut host) in ticket.outputs {
            results.push(dev.host_mut(&mut host)?[..out.len()].to_vec());
            self.hosts.push(host);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_cover_and_waste_at_most_an_eighth() {
        let mut last = 0;
        for words in (0..5000).chain([1 << 20, (1 << 20) + 1, 411_041_792, usize::MAX >> 8]) {
            let c = size_class(words);
            assert!(c >= words && c >= 64, "{words}");
            assert!(words < 64 || (c - words) * 8 <= words, "{words} → {c}");
            assert!(c >= last || words > 5000);
            last = c;
        }
        assert_eq!(size_class(65), 72);
        assert_eq!(size_class(1000), 1024);
    }

    fn counting(count: &std::cell::Cell<usize>) -> impl Fn(usize) -> Result<Vec<u8>> + '_ {
        move |n| {
            count.set(count.get() + 1);
            Ok(vec![0; n])
        }
    }

    #[test]
    fn freed_buffers_serve_later_allocations_of_their_class() {
        let pool = Pool::default();
        let fresh = std::cell::Cell::new(0);
        let (a, reused) = pool.take(1000, counting(&fresh)).unwrap();
        assert!(!reused && a.len() == 1024);
        drop(a);
        let (b, reused) = pool.take(990, counting(&fresh)).unwrap();
        assert!(reused);
        let (_c, reused) = pool.take(990, counting(&fresh)).unwrap();
        assert!(!reused, "the one free buffer is taken");
        drop(b);
        let s = pool.stats();
        assert_eq!((s.driver_allocs, s.reuses, s.held_words), (2, 1, 2048));
        pool.release_free();
        assert_eq!(pool.stats().held_words, 1024);
    }

    #[test]
    fn a_failed_driver_allocation_releases_the_free_buffers_and_retries() {
        let pool = Pool::default();
        let calls = std::cell::Cell::new(0usize);
        drop(pool.take(100, |n| Ok(vec![0u8; n])).unwrap());
        // A driver that fails while anything is held in the free lists.
        let stats = &pool;
        let fresh = |n: usize| {
            calls.set(calls.get() + 1);
            if stats.stats().held_words > 0 {
                Err(error("alloc", "out of memory"))
            } else {
                Ok(vec![0u8; n])
            }
        };
        let (m, reused) = pool.take(5000, fresh).unwrap();
        assert!(!reused && m.len() >= 5000 && calls.get() == 2);
    }

    #[test]
    fn buffers_freed_during_a_capture_stay_with_the_graph() {
        let pool = Pool::default();
        let fresh = std::cell::Cell::new(0);
        let before = pool.take(200, counting(&fresh)).unwrap().0;
        drop(pool.take(200, counting(&fresh)).unwrap());
        pool.begin_capture();
        let (x, reused) = pool.take(200, counting(&fresh)).unwrap();
        assert!(reused);
        drop(x);
        drop(before);
        let (y, reused) = pool.take(200, counting(&fresh)).unwrap();
        assert!(reused, "buffers freed in the capture serve the capture");
        drop(y);
        assert!(pool.take(5000, counting(&fresh)).is_err());
        let retained = pool.end_capture();
        assert_eq!(retained.mems.len(), 2);
        let (_z, reused) = pool.take(200, counting(&fresh)).unwrap();
        assert!(!reused, "the graph's buffers are not free");
        drop(retained);
        let (_w, reused) = pool.take(200, counting(&fresh)).unwrap();
        assert!(reused, "they are once the graph is dropped");
    }
}
