//! The engine every command runs on: inputs → prepared on host threads (decoding,
//! pre-processing) → fixed batches → one worker per device → finished on host threads (writing
//! outputs) → handed to the caller in input order.
//!
//! Memory stays bounded however many inputs there are: a batch is prepared only while fewer than
//! [`Options::batches_in_flight`] batches are between preparation and the caller, so no queue
//! and no reordering buffer holds more. Batches are cut from the input order alone (batch `b` is
//! inputs `b·size ‥ (b+1)·size`), never from which worker is free, so any number of workers
//! gives the same results. A batch whose pass fails is retried image by image, so that the error
//! names the image and the others go on.

pub mod network;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Condvar, Mutex, MutexGuard};

/// What a command does with each input, apart from the device's part.
pub trait Job: Sync {
    type Input: Sync;
    /// An input ready for the device (decoded and pre-processed).
    type Prepared: Send;
    /// The device's result for one input.
    type Computed: Send;
    /// What the caller receives for one input.
    type Done: Send;

    /// Decodes and pre-processes one input (on a host thread).
    fn prepare(&self, input: &Self::Input) -> Result<Self::Prepared, String>;

    /// Writes the outputs of one input (on a host thread).
    fn finish(
        &self,
        input: &Self::Input,
        prepared: Self::Prepared,
        computed: Self::Computed,
    ) -> Self::Done;

    /// The outcome of an input that failed to prepare or to compute.
    fn failed(&self, input: &Self::Input, error: String) -> Self::Done;
}

/// A device's part: one pass over a batch, one result per item, in order.
pub trait Compute<P, C> {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<C>, String>;

    /// Starts `batch`. [`Started::Queued`]: its results come from a later [`Compute::finish`]
    /// (batches finish in the order they were started), and meanwhile the next batch may be
    /// started, so that a device with copy streams overlaps them. By default the batch is
    /// computed at once.
    fn start(&mut self, batch: &[&P]) -> Started<C> {
        Started::Done(self.compute(batch))
    }

    /// The results of the oldest batch that [`Compute::start`] queued.
    fn finish(&mut self) -> Result<Vec<C>, String> {
        Err("no batch was queued".into())
    }
}

/// What [`Compute::start`] did with a batch.
pub enum Started<C> {
    /// Queued: [`Compute::finish`] returns its results.
    Queued,
    /// Computed.
    Done(Result<Vec<C>, String>),
}

impl<P, C, F: FnMut(&[&P]) -> Result<Vec<C>, String>> Compute<P, C> for F {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<C>, String> {
        self(batch)
    }
}

impl<P, C> Compute<P, C> for Box<dyn Compute<P, C> + '_> {
    fn compute(&mut self, batch: &[&P]) -> Result<Vec<C>, String> {
        (**self).compute(batch)
    }
    fn start(&mut self, batch: &[&P]) -> Started<C> {
        (**self).start(batch)
    }
    fn finish(&mut self) -> Result<Vec<C>, String> {
        (**self).finish()
    }
}

/// How the work is cut and how much of it may be under way at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Inputs per pass.
    pub batch_size: usize,
    /// Threads that prepare inputs, and as many that finish them.
    pub host_threads: usize,
    /// The most batches between preparation and the caller; at most this many batches of
    /// prepared inputs exist at any time.
    pub batches_in_flight: usize,
}

impl Options {
    /// Enough batches in flight for every preparing thread and two per worker, so that a
    /// device never waits while the host can keep up.
    pub fn new(batch_size: usize, host_threads: usize, workers: usize) -> Options {
        let host_threads = host_threads.max(1);
        Options {
            batch_size: batch_size.max(1),
            host_threads,
            batches_in_flight: host_threads + 2 * workers.max(1),
        }
    }
}

/// What the caller's sink tells the engine after each input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Prepare and compute nothing more (what is under way is dropped).
    Stop,
}

/// A batch of inputs: its number and, per input, its index and how it was prepared.
struct Batch<P> {
    number: usize,
    items: Vec<(usize, Result<P, String>)>,
}

/// One input's preparation and the device's result, or why there is none.
type ItemOutcome<J> = Result<(<J as Job>::Prepared, <J as Job>::Computed), String>;

/// A batch with the device's results.
type Computed<J> = Batch<(<J as Job>::Prepared, <J as Job>::Computed)>;

/// A finished batch: its number and each input's outcome with its index.
type Finished<J> = (usize, Vec<(usize, <J as Job>::Done)>);

/// Runs `job` over `inputs` on `workers` workers; worker `w` opens its device with `open(w)`
/// on its own thread (so a device's state never crosses threads). `sink` receives each input's
/// outcome in input order, on the calling thread; its [`Flow::Stop`] ends the run early. Errors
/// only when a worker cannot open its device: then nothing more is computed.
pub fn run<J, W, O, S>(
    job: &J,
    inputs: &[J::Input],
    workers: usize,
    open: O,
    options: &Options,
    mut sink: S,
) -> Result<(), String>
where
    J: Job,
    W: Compute<J::Prepared, J::Computed>,
    O: Fn(usize) -> Result<W, String> + Sync,
    S: FnMut(usize, J::Done) -> Flow,
{
    let size = options.batch_size.max(1);
    let batches = inputs.len().div_ceil(size);
    let in_flight = options.batches_in_flight.max(1);
    let workers = workers.max(1);

    let abort = AtomicBool::new(false);
    let next_batch = AtomicUsize::new(0);
    // Batches handed to the caller so far; batch b may be prepared once b < emitted + in_flight.
    let emitted = Mutex::new(0usize);
    let window = Condvar::new();
    let stop = || {
        abort.store(true, Ordering::SeqCst);
        let _guard = emitted.lock().unwrap_or_else(|e| e.into_inner());
        window.notify_all();
    };

    // Each channel holds at most `in_flight` batches, as many as can exist: no send blocks.
    let (prepared_tx, prepared_rx) = sync_channel::<Batch<J::Prepared>>(in_flight);
    let (computed_tx, computed_rx) = sync_channel::<Computed<J>>(in_flight);
    let (done_tx, done_rx) = sync_channel::<Finished<J>>(in_flight);
    let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(workers);
    let prepared_rx = Mutex::new(prepared_rx);
    let computed_rx = Mutex::new(computed_rx);

    std::thread::scope(|scope| {
        for _ in 0..options.host_threads.max(1) {
            let tx = prepared_tx.clone();
            let (abort, next_batch, emitted, window) = (&abort, &next_batch, &emitted, &window);
            scope.spawn(move || {
                prepare_batches(
                    job, inputs, size, batches, in_flight, abort, next_batch, emitted, window, &tx,
                )
            });
        }
        drop(prepared_tx);

        for w in 0..workers {
            let (tx, ready, rx, open, abort) = (
                computed_tx.clone(),
                ready_tx.clone(),
                &prepared_rx,
                &open,
                &abort,
            );
            scope.spawn(move || {
                let device = match open(w) {
                    Ok(device) => {
                        let _ = ready.send(Ok(()));
                        device
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                drop(ready);
                compute_batches::<J, W>(device, rx, &tx, abort);
            });
        }
        drop((computed_tx, ready_tx));

        for _ in 0..options.host_threads.max(1) {
            let (tx, rx) = (done_tx.clone(), &computed_rx);
            scope.spawn(move || finish_batches(job, inputs, rx, &tx));
        }
        drop(done_tx);

        // Every device opens before the first result is handed on, or the run stops.
        let mut opened = Ok(());
        for ready in ready_rx.iter().take(workers) {
            if let Err(e) = ready {
                opened = Err(e);
                stop();
                break;
            }
        }
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for (number, done) in done_rx.iter() {
            if abort.load(Ordering::SeqCst) {
                continue; // drain, so that every thread can end
            }
            waiting.insert(number, done);
            while let Some(done) = waiting.remove(&next) {
                next += 1;
                let mut go_on = true;
                for (index, outcome) in done {
                    if go_on && sink(index, outcome) == Flow::Stop {
                        go_on = false;
                    }
                }
                if !go_on {
                    stop();
                    break;
                }
                *emitted.lock().unwrap_or_else(|e| e.into_inner()) = next;
                window.notify_all();
            }
        }
        opened
    })
}

#[allow(clippy::too_many_arguments)]
fn prepare_batches<J: Job>(
    job: &J,
    inputs: &[J::Input],
    size: usize,
    batches: usize,
    in_flight: usize,
    abort: &AtomicBool,
    next_batch: &AtomicUsize,
    emitted: &Mutex<usize>,
    window: &Condvar,
    tx: &SyncSender<Batch<J::Prepared>>,
) {
    loop {
        let number = next_batch.fetch_add(1, Ordering::SeqCst);
        if number >= batches {
            return;
        }
        {
            let mut done = emitted.lock().unwrap_or_else(|e| e.into_inner());
            while number >= *done + in_flight && !abort.load(Ordering::SeqCst) {
                done = window.wait(done).unwrap_or_else(|e| e.into_inner());
            }
        }
        if abort.load(Ordering::SeqCst) {
            return;
        }
        let range = number * size..((number + 1) * size).min(inputs.len());
        let items = range.map(|i| (i, job.prepare(&inputs[i]))).collect();
        if tx.send(Batch { number, items }).is_err() {
            return;
        }
    }
}

/// A batch started on a device and not yet finished: its number, the items sent to the
/// device, and those that failed before it.
struct InFlight<J: Job> {
    number: usize,
    ready: Vec<(usize, J::Prepared)>,
    failed: Vec<(usize, ItemOutcome<J>)>,
}

fn compute_batches<J: Job, W: Compute<J::Prepared, J::Computed>>(
    mut device: W,
    rx: &Mutex<Receiver<Batch<J::Prepared>>>,
    tx: &SyncSender<Computed<J>>,
    abort: &AtomicBool,
) {
    // At most one batch stays on the device while the next is started; when no next batch is
    // ready yet it is finished first, so that no worker holds a batch the others wait for.
    let mut in_flight: Option<InFlight<J>> = None;
    loop {
        let received = {
            let guard = rx_lock(rx);
            match guard.try_recv() {
                Ok(batch) => Some(batch),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    drop(guard);
                    if let Some(held) = in_flight.take()
                        && tx.send(finish_held(&mut device, held)).is_err()
                    {
                        return;
                    }
                    rx_lock(rx).recv().ok()
                }
            }
        };
        let Some(batch) = received else { break };
        if abort.load(Ordering::SeqCst) {
            continue;
        }
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        for (i, prepared) in batch.items {
            match prepared {
                Ok(p) => ready.push((i, p)),
                Err(e) => failed.push((i, Err(e))),
            }
        }
        let started = {
            let refs: Vec<&J::Prepared> = ready.iter().map(|(_, p)| p).collect();
            if refs.is_empty() {
                Started::Done(Ok(Vec::new()))
            } else {
                device.start(&refs)
            }
        };
        if let Some(held) = in_flight.take()
            && tx.send(finish_held(&mut device, held)).is_err()
        {
            return;
        }
        let held = InFlight {
            number: batch.number,
            ready,
            failed,
        };
        match started {
            Started::Queued => in_flight = Some(held),
            Started::Done(first) => {
                if tx.send(complete(&mut device, held, first)).is_err() {
                    return;
                }
            }
        }
    }
    if let Some(held) = in_flight.take() {
        let _ = tx.send(finish_held(&mut device, held));
    }
}

fn rx_lock<T>(rx: &Mutex<Receiver<T>>) -> MutexGuard<'_, Receiver<T>> {
    rx.lock().unwrap_or_else(|e| e.into_inner())
}

/// The results of a queued batch, from the device's [`Compute::finish`].
fn finish_held<J: Job, W: Compute<J::Prepared, J::Computed>>(
    device: &mut W,
    held: InFlight<J>,
) -> Computed<J> {
    let first = device.finish();
    complete(device, held, first)
}

/// A batch's items with the device's results: the first attempt's, or, where it failed, one
/// retry per item.
fn complete<J: Job, W: Compute<J::Prepared, J::Computed>>(
    device: &mut W,
    held: InFlight<J>,
    first: Result<Vec<J::Computed>, String>,
) -> Computed<J> {
    let InFlight {
        number,
        ready,
        mut failed,
    } = held;
    let results = {
        let refs: Vec<&J::Prepared> = ready.iter().map(|(_, p)| p).collect();
        retry_failed(device, &refs, first)
    };
    failed.extend(
        ready
            .into_iter()
            .zip(results)
            .map(|((i, p), r)| (i, r.map(|c| (p, c)))),
    );
    failed.sort_by_key(|(i, _)| *i);
    Batch {
        number,
        items: failed,
    }
}

/// One pass over `batch`; if it fails, one pass per item, so that each error is an item's own.
fn compute_with_retry<P, C>(
    device: &mut impl Compute<P, C>,
    batch: &[&P],
) -> Vec<Result<C, String>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let first = device.compute(batch);
    retry_failed(device, batch, first)
}

/// `first`, the results of a pass over `batch`, item by item; where it failed, one pass per item.
fn retry_failed<P, C>(
    device: &mut impl Compute<P, C>,
    batch: &[&P],
    first: Result<Vec<C>, String>,
) -> Vec<Result<C, String>> {
    match first {
        Ok(results) if results.len() == batch.len() => results.into_iter().map(Ok).collect(),
        _ if batch.len() > 1 => batch
            .iter()
            .map(|item| compute_with_retry(device, std::slice::from_ref(item)).remove(0))
            .collect(),
        Ok(results) => vec![Err(format!(
            "the device returned {} results for {} images",
            results.len(),
            batch.len()
        ))],
        Err(e) => vec![Err(e)],
    }
}

fn finish_batches<J: Job>(
    job: &J,
    inputs: &[J::Input],
    rx: &Mutex<Receiver<Computed<J>>>,
    tx: &SyncSender<Finished<J>>,
) {
    loop {
        let received = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(batch) = received else { return };
        let done = batch
            .items
            .into_iter()
            .map(|(i, r)| {
                let outcome = match r {
                    Ok((prepared, computed)) => job.finish(&inputs[i], prepared, computed),
                    Err(e) => job.failed(&inputs[i], e),
                };
                (i, outcome)
            })
            .collect();
        if tx.send((batch.number, done)).is_err() {
            return;
        }
    }
}
