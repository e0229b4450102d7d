//! The engine with a fake, slow device: results in input order, memory bounded by the batches in
//! flight, the per-image retry of a failing batch, several workers, and 1 vs 2 workers giving
//! the same results.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sglrp::pipeline::{self, Compute, Flow, Job, Options};

/// Inputs are numbers; an input listed in `bad_prepare` fails to decode, one listed in
/// `poison` makes any batch holding it fail on the device. Counts the prepared items alive.
struct FakeJob {
    bad_prepare: Vec<u64>,
    alive: AtomicUsize,
    most_alive: AtomicUsize,
    prepare_delay: Duration,
}

struct Prepared<'a> {
    value: u64,
    alive: &'a AtomicUsize,
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<'a> FakeJob {
    fn new(bad_prepare: &[u64], prepare_delay_ms: u64) -> Self {
        FakeJob {
            bad_prepare: bad_prepare.to_vec(),
            alive: AtomicUsize::new(0),
            most_alive: AtomicUsize::new(0),
            prepare_delay: Duration::from_millis(prepare_delay_ms),
        }
    }
    fn prepared(&'a self, value: u64) -> Prepared<'a> {
        let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_alive.fetch_max(now, Ordering::SeqCst);
        Prepared {
            value,
            alive: &self.alive,
        }
    }
}

/// The fake device: a value's "result" depends on the value only (never on the batch), with a
/// delay per batch; counts its passes.
struct SlowDevice<'a> {
    worker: usize,
    poison: &'a [u64],
    delay: Duration,
    passes: &'a Mutex<Vec<(usize, usize)>>,
}

impl<'j> Compute<Prepared<'j>, u64> for SlowDevice<'_> {
    fn compute(&mut self, batch: &[&Prepared<'j>]) -> Result<Vec<u64>, String> {
        std::thread::sleep(self.delay);
        self.passes.lock().unwrap().push((self.worker, batch.len()));
        if let Some(p) = batch.iter().find(|p| self.poison.contains(&p.value)) {
            return Err(format!("value {} overflows", p.value));
        }
        Ok(batch
            .iter()
            .map(|p| p.value.wrapping_mul(2654435761) % 1000)
            .collect())
    }
}

impl<'j> Job for &'j FakeJob {
    type Input = u64;
    type Prepared = Prepared<'j>;
    type Computed = u64;
    type Done = Result<(u64, u64), String>;

    fn prepare(&self, input: &u64) -> Result<Prepared<'j>, String> {
        std::thread::sleep(self.prepare_delay);
        if self.bad_prepare.contains(input) {
            return Err(format!("{input}: cannot decode"));
        }
        Ok(self.prepared(*input))
    }
    fn finish(&self, input: &u64, prepared: Prepared<'j>, computed: u64) -> Self::Done {
        assert_eq!(*input, prepared.value);
        Ok((*input, computed))
    }
    fn failed(&self, _: &u64, error: String) -> Self::Done {
        Err(error)
    }
}

/// Seeded shuffled inputs: the order is the caller's, not sorted.
fn inputs(n: usize, seed: u64) -> Vec<u64> {
    let mut state = seed | 1;
    let mut values: Vec<u64> = (0..n as u64).map(|v| v * 7 + 3).collect();
    for i in (1..values.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        values.swap(i, (state % (i as u64 + 1)) as usize);
    }
    values
}

type Outcomes = Vec<(usize, Result<(u64, u64), String>)>;

fn run(
    job: &FakeJob,
    inputs: &[u64],
    workers: usize,
    options: Options,
    poison: &[u64],
    device_delay_ms: u64,
) -> (Outcomes, Vec<(usize, usize)>) {
    let passes = Mutex::new(Vec::new());
    let mut got = Vec::new();
    pipeline::run(
        &job,
        inputs,
        workers,
        |worker| {
            Ok(SlowDevice {
                // Worker 0 is slower: later batches overtake earlier ones.
                delay: Duration::from_millis(device_delay_ms * if worker == 0 { 3 } else { 1 }),
                worker,
                poison,
                passes: &passes,
            })
        },
        &options,
        |index, done| {
            got.push((index, done));
            Flow::Continue
        },
    )
    .unwrap();
    (got, passes.into_inner().unwrap())
}

#[test]
fn results_come_in_input_order_and_match_across_worker_counts() {
    let inputs = inputs(57, 11);
    let bad = [inputs[4], inputs[30]];
    let poison = [inputs[13]];
    let job = FakeJob::new(&bad, 0);
    let (one, _) = run(&job, &inputs, 1, Options::new(5, 2, 1), &poison, 1);
    let (two, passes) = run(&job, &inputs, 2, Options::new(5, 3, 2), &poison, 2);
    assert_eq!(one, two, "1 and 2 workers differ");
    let indices: Vec<usize> = one.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, (0..inputs.len()).collect::<Vec<_>>());
    for (i, outcome) in &one {
        let v = inputs[*i];
        match outcome {
            Ok((input, result)) => {
                assert_eq!(*input, v);
                assert_eq!(*result, v.wrapping_mul(2654435761) % 1000);
            }
            Err(e) if bad.contains(&v) => assert_eq!(*e, format!("{v}: cannot decode")),
            Err(e) => {
                assert!(poison.contains(&v), "{v} failed: {e}");
                assert_eq!(*e, format!("value {v} overflows"));
            }
        }
    }
    assert_eq!(one.iter().filter(|(_, o)| o.is_err()).count(), 3);
    let workers: std::collections::BTreeSet<usize> = passes.iter().map(|p| p.0).collect();
    assert_eq!(workers.len(), 2, "both workers took batches: {passes:?}");
    assert_eq!(
        job.alive.load(Ordering::SeqCst),
        0,
        "every prepared item dropped"
    );
}

#[test]
fn a_failing_batch_is_retried_image_by_image_once() {
    let inputs: Vec<u64> = (0..10).collect();
    let job = FakeJob::new(&[], 0);
    // Batches [0..4) [4..8) [8..10): the second holds the poisoned 6.
    let (got, passes) = run(&job, &inputs, 1, Options::new(4, 1, 1), &[6], 0);
    let sizes: Vec<usize> = passes.iter().map(|p| p.1).collect();
    assert_eq!(
        sizes,
        [4, 4, 1, 1, 1, 1, 2],
        "one failed pass, then one per image"
    );
    let failed: Vec<usize> = got
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(failed, [6]);
}

#[test]
fn memory_is_bounded_by_the_batches_in_flight() {
    // A fast host and a slow device: without a bound every input would be prepared at once.
    let inputs = inputs(120, 5);
    let job = FakeJob::new(&[], 0);
    let options = Options {
        batch_size: 3,
        host_threads: 2,
        batches_in_flight: 4,
    };
    let (got, _) = run(&job, &inputs, 2, options, &[], 3);
    assert_eq!(got.len(), inputs.len());
    let most = job.most_alive.load(Ordering::SeqCst);
    assert!(
        most <= 4 * 3,
        "{most} prepared items alive at once, bound 12"
    );
    assert!(most >= 3, "{most}: the device never held a full batch?");
}

#[test]
fn a_sink_can_stop_the_run_and_a_device_that_does_not_open_is_an_error() {
    let inputs = inputs(40, 3);
    let job = FakeJob::new(&[], 1);
    let passes = Mutex::new(Vec::new());
    let mut seen = 0;
    pipeline::run(
        &&job,
        &inputs,
        1,
        |worker| {
            Ok(SlowDevice {
                worker,
                poison: &[],
                delay: Duration::from_millis(1),
                passes: &passes,
            })
        },
        &Options::new(2, 1, 1),
        |_, _| {
            seen += 1;
            if seen == 3 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        },
    )
    .unwrap();
    assert_eq!(seen, 3, "nothing handed on after Stop");
    assert!(
        passes.lock().unwrap().len() < 20,
        "the run went on after Stop"
    );

    let error = pipeline::run(
        &&job,
        &inputs,
        2,
        |worker| -> Result<SlowDevice<'_>, String> {
            if worker == 1 {
                Err("cuda:1: out of memory".into())
            } else {
                Ok(SlowDevice {
                    worker,
                    poison: &[],
                    delay: Duration::from_millis(1),
                    passes: &passes,
                })
            }
        },
        &Options::new(2, 1, 2),
        |_, _| Flow::Continue,
    )
    .expect_err("a worker did not open");
    assert_eq!(error, "cuda:1: out of memory");
    assert_eq!(job.alive.load(Ordering::SeqCst), 0);
}

#[test]
fn no_inputs_is_no_work() {
    let job = FakeJob::new(&[], 0);
    let (got, passes) = run(&job, &[], 2, Options::new(4, 2, 2), &[], 0);
    assert!(got.is_empty() && passes.is_empty());
}

/// Real networks: inputs are pre-processed images; the outcome is the whole result.
struct Images;

/// An image's logits and maps, or its error.
type Explained = Result<(Vec<f32>, Vec<Vec<f32>>), String>;

impl Job for Images {
    type Input = Vec<f32>;
    type Prepared = Vec<f32>;
    type Computed = Result<sglrp::explain::ImageResult, String>;
    type Done = Explained;

    fn prepare(&self, input: &Vec<f32>) -> Result<Vec<f32>, String> {
        Ok(input.clone())
    }
    fn finish(&self, _: &Vec<f32>, _: Vec<f32>, computed: Self::Computed) -> Self::Done {
        computed.map(|r| {
            let maps = r.explanations.into_iter().map(|e| e.relevance).collect();
            (r.logits, maps)
        })
    }
    fn failed(&self, _: &Vec<f32>, error: String) -> Self::Done {
        Err(error)
    }
}

fn explain_on_cpu(
    model: &sglrp::model::Model,
    images: &[Vec<f32>],
    workers: usize,
    batch: usize,
) -> Vec<Explained> {
    use sglrp::explain::{Method, Network, Preset, Request, Target};
    use sglrp::pipeline::network::Explainer;
    let requests = vec![
        Request::new(Method::Lrp, Target::Rank(1)),
        Request::new(Method::Sglrp, Target::Rank(2)),
    ];
    let mut got = Vec::new();
    pipeline::run(
        &Images,
        images,
        workers,
        |_| {
            let backend =
                sglrp::backend::cpu::CpuBackend::new(Some(1)).map_err(|e| e.to_string())?;
            let network = Network::new(backend, model).map_err(|e| e.to_string())?;
            Ok(Explainer::new(network, requests.clone(), Preset::Paper))
        },
        &Options::new(batch, 2, workers),
        |_, done| {
            got.push(done);
            Flow::Continue
        },
    )
    .unwrap();
    got
}

fn small_model() -> sglrp::model::Model {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/small_vgg.model.safetensors");
    sglrp::model::Model::load(&path).unwrap()
}

fn seeded_images(model: &sglrp::model::Model, n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| sglrp::bench::random_images(model, 1, 100 + i as u64))
        .collect()
}

#[test]
fn two_cpu_workers_give_the_results_of_one() {
    let model = small_model();
    let images = seeded_images(&model, 7);
    let one = explain_on_cpu(&model, &images, 1, 3);
    let two = explain_on_cpu(&model, &images, 2, 3);
    assert_eq!(one.len(), 7);
    assert!(one.iter().all(Result::is_ok));
    assert_eq!(one, two, "two workers changed the results");
    // The maps are the library's own, image by image.
    let alone = explain_on_cpu(&model, &images[4..5], 1, 1);
    assert_eq!(one[4], alone[0]);
}

#[test]
fn maps_that_overflow_are_an_error_for_that_image() {
    let mut model = small_model();
    // Finite weights whose products overflow f32 in the forward pass.
    for layer in &mut model.layers {
        if let sglrp::model::Layer::Conv(p) = layer {
            p.weight.iter_mut().for_each(|w| *w *= 1e12);
        }
    }
    let images = seeded_images(&model, 2);
    let got = explain_on_cpu(&model, &images, 1, 2);
    assert_eq!(got.len(), 2);
    for outcome in got {
        let error = outcome.expect_err("overflowing weights reported as a success");
        assert!(
            error.contains("NaN") && error.contains("infinite") && error.starts_with("the "),
            "{error}"
        );
    }
}
