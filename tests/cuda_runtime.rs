//! The runtime of the CUDA backend on the emulated device (`tests/emu`): the arena, the streams
//! and their events, the pipeline of batches and CUDA graphs. The emulator runs each stream only
//! when an event or a download needs it, so a missing wait shows as NaN here.

mod common;
mod emu;

use emu::{EmuDevice, Schedule};
use sglrp::backend::cuda::{Device, GpuBackend, GpuBuf, GpuConv, Graphs, Pipeline, Stream};
use sglrp::backend::{Backend, BiasMode, ConvShape, PassKey, PoolShape, Stabilizer, WeightSet};
use sglrp::error::Result;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{ConvParams, Model};

use common::Rng;

const SEED: u64 = 0x5eed_0010;

fn conv_params(rng: &mut Rng, cin: usize, cout: usize) -> ConvParams {
    ConvParams {
        cin,
        cout,
        weight: rng.vec(cout * cin * 9, -1.0, 1.0),
        bias: rng.vec(cout, -0.5, 0.5),
    }
}

/// A pass of several kernels and intermediate buffers over `n` images of 7×5×3: a conv, a pool,
/// the z⁺ quotient and transpose of the conv for 2 heads. Returns the pooled map and the
/// relevance.
struct Pass {
    w: GpuConv<EmuDevice>,
    r: GpuBuf<EmuDevice>,
}

const H: usize = 7;
const W: usize = 5;
const CIN: usize = 3;
const COUT: usize = 6;
const HEADS: usize = 2;

fn shape(n: usize) -> ConvShape {
    ConvShape {
        n,
        h: H,
        w: W,
        cin: CIN,
        cout: COUT,
    }
}

impl Pass {
    fn new(b: &GpuBackend<EmuDevice>, rng: &mut Rng, max_n: usize) -> Self {
        let w = b.prepare_conv(&conv_params(rng, CIN, COUT)).unwrap();
        let r = b
            .upload(&rng.vec(shape(max_n).output_len() * HEADS, -1.0, 1.0))
            .unwrap();
        Pass { w, r }
    }

    fn run(
        &self,
        b: &GpuBackend<EmuDevice>,
        x: &GpuBuf<EmuDevice>,
    ) -> Result<Vec<GpuBuf<EmuDevice>>> {
        let n = x.len() / (H * W * CIN);
        let s = shape(n);
        let y = b.conv3x3_forward(s, x, &self.w)?;
        let pool = PoolShape {
            n,
            h: H,
            w: W,
            c: COUT,
        };
        let (pooled, _) = b.maxpool_forward(pool, &y)?;
        // The first n·K rows of the fixed relevance.
        let r = b.alloc_buf(s.output_len() * HEADS)?;
        b.device().copy(r.mem(), self.r.mem(), r.len())?;
        let q = b.conv_quotient(
            s,
            HEADS,
            x,
            &self.w,
            WeightSet::Positive,
            BiasMode::Positive,
            Stabilizer::Epsilon(1e-6),
            &r,
        )?;
        let rel = b.conv_transpose(s, HEADS, &q, &self.w, WeightSet::Positive, Some(x))?;
        Ok(vec![pooled, rel])
    }

    /// The pass on the blocking upload/download path.
    fn direct(&self, b: &GpuBackend<EmuDevice>, x: &[f32]) -> Vec<Vec<f32>> {
        let outs = self.run(b, &b.upload(x).unwrap()).unwrap();
        outs.iter().map(|o| b.download(o).unwrap()).collect()
    }
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|o| o.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn assert_finite(v: &[Vec<f32>]) {
    assert!(
        v.iter().flatten().all(|x| x.is_finite()),
        "a NaN reached the output"
    );
}

#[test]
fn the_second_batch_allocates_nothing() {
    let model = Model::load(common::fixtures().join("small_vgg.model.safetensors")).unwrap();
    let net = Network::new(emu::backend(), &model).unwrap();
    let mut rng = Rng::new(SEED);
    let per_image = model.input_side * model.input_side * 3;
    let requests = [
        Request::new(Method::Sglrp, Target::Rank(1)),
        Request::new(Method::Lrp, Target::Rank(2)),
    ];
    let x1 = rng.vec(2 * per_image, 0.0, 1.0);
    let x2 = rng.vec(2 * per_image, 0.0, 1.0);
    let stats = || net.backend().device().pool_stats();
    let loaded = stats();
    let first = net.explain_each(&x1, &requests, Preset::Paper).unwrap();
    // The copy streams' input slots (`PASS_SLOTS`) take their buffers one batch each.
    for _ in 1..sglrp::backend::cuda::config::PASS_SLOTS {
        net.explain_each(&x2, &requests, Preset::Paper).unwrap();
    }
    let warm = stats();
    assert!(warm.driver_allocs > loaded.driver_allocs);
    let second = net.explain_each(&x2, &requests, Preset::Paper).unwrap();
    let again = net.explain_each(&x1, &requests, Preset::Paper).unwrap();
    let steady = stats();
    assert_eq!(
        steady.driver_allocs, warm.driver_allocs,
        "batches after the first allocate from the arena only"
    );
    assert_eq!(steady.held_words, warm.held_words);
    assert!(steady.reuses > warm.reuses);
    // Reused buffers hold stale values (the emulator poisons them): results do not change.
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.logits, b.logits);
        for (ea, eb) in a.explanations.iter().zip(&b.explanations) {
            assert_eq!(ea.relevance, eb.relevance);
        }
    }
    assert_ne!(first[0].logits, second[0].logits);
}

/// Batches of `n` images through a pipeline of `depth` slots, `lead` batches submitted ahead.
fn pipelined(schedule: Schedule, depth: usize, lead: usize) {
    let b = emu::backend();
    b.device().set_schedule(schedule);
    let mut rng = Rng::new(SEED + 1);
    let n = 3;
    let pass = Pass::new(&b, &mut rng, n);
    let batches: Vec<Vec<f32>> = (0..6)
        .map(|_| rng.vec(shape(n).input_len(), -1.0, 1.0))
        .collect();
    let want: Vec<_> = batches.iter().map(|x| pass.direct(&b, x)).collect();
    let mut pipe = Pipeline::new(depth).unwrap();
    let mut tickets = std::collections::VecDeque::new();
    let mut got = Vec::new();
    for x in &batches {
        let ticket = pipe.submit(&b, &[x], |b, inputs| pass.run(b, &inputs[0]));
        tickets.push_back(ticket.unwrap());
        if tickets.len() > lead {
            got.push(pipe.finish(&b, tickets.pop_front().unwrap()).unwrap());
        }
    }
    while let Some(t) = tickets.pop_front() {
        got.push(pipe.finish(&b, t).unwrap());
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_finite(g);
        assert_eq!(
            bits(g),
            bits(w),
            "batch {i} ({schedule:?}, depth {depth}, lead {lead})"
        );
    }
}

#[test]
fn pipelined_batches_equal_the_blocking_path() {
    for schedule in [Schedule::Late, Schedule::UploadsEarly] {
        for (depth, lead) in [(2, 1), (2, 2), (3, 2), (1, 0), (1, 3)] {
            pipelined(schedule, depth, lead);
        }
    }
}

#[test]
fn the_emulator_shows_a_missing_wait() {
    let b = emu::backend();
    let dev = b.device();
    let mut rng = Rng::new(SEED + 2);
    let pass = Pass::new(&b, &mut rng, 1);
    let x = rng.vec(shape(1).input_len(), -1.0, 1.0);
    let want = pass.direct(&b, &x);
    // An upload the compute stream does not wait for: the pass reads a fresh (NaN) buffer.
    let input = b.alloc_buf(x.len()).unwrap();
    let mut host = dev.alloc_host(x.len()).unwrap();
    dev.host_mut(&mut host).unwrap()[..x.len()].copy_from_slice(&x);
    dev.copy_to_device(input.mem(), &mut host, x.len()).unwrap();
    let outs = pass.run(&b, &input).unwrap();
    let rel = b.download(&outs[1]).unwrap();
    assert!(
        rel.iter().all(|v| v.is_nan()),
        "the pass ran before its upload"
    );
    // With the wait, it is right.
    dev.copy_to_device(input.mem(), &mut host, x.len()).unwrap();
    dev.wait(Stream::Compute, &dev.record(Stream::Upload).unwrap())
        .unwrap();
    let outs = pass.run(&b, &input).unwrap();
    assert_eq!(bits(&[b.download(&outs[1]).unwrap()]), bits(&want[1..]));
    // A download that does not wait for the pass copies what was there before it ran.
    let outs = pass.run(&b, &input).unwrap();
    let len = outs[1].len();
    let mut back = dev.alloc_host(len).unwrap();
    dev.copy_to_host(&mut back, outs[1].mem(), len).unwrap();
    let early = dev.host_mut(&mut back).unwrap()[..len].to_vec();
    assert_ne!(
        bits(&[early]),
        bits(&want[1..]),
        "the download ran before the pass"
    );
    dev.wait(Stream::Download, &dev.record(Stream::Compute).unwrap())
        .unwrap();
    dev.copy_to_host(&mut back, outs[1].mem(), len).unwrap();
    let late = dev.host_mut(&mut back).unwrap()[..len].to_vec();
    assert_eq!(bits(&[late]), bits(&want[1..]));
}

#[test]
fn replayed_graphs_equal_the_direct_run_bit_for_bit() {
    let b = emu::backend();
    let mut rng = Rng::new(SEED + 3);
    let pass = Pass::new(&b, &mut rng, 4);
    let mut graphs = Graphs::default();
    let run = |graphs: &mut Graphs<EmuDevice>, n: usize, x: &[f32]| {
        let key = PassKey {
            batch: n,
            heads: HEADS,
            pass: 0,
        };
        let input = b.upload(x).unwrap();
        let outs = graphs
            .run(&b, key, &[input], |b, x| pass.run(b, &x[0]))
            .unwrap();
        outs.iter()
            .map(|o| b.download(o).unwrap())
            .collect::<Vec<_>>()
    };
    let x = |rng: &mut Rng, n| rng.vec(shape(n).input_len(), -1.0, 1.0);
    let (a1, a2, b1, a3) = (
        x(&mut rng, 2),
        x(&mut rng, 2),
        x(&mut rng, 4),
        x(&mut rng, 2),
    );
    let direct: Vec<_> = [&a1, &a2, &b1, &a3].map(|x| pass.direct(&b, x)).into();

    let got = run(&mut graphs, 2, &a1);
    assert_eq!(bits(&got), bits(&direct[0]));
    assert_eq!((graphs.captures(), graphs.replays()), (1, 1));
    let launches = b.device().launches.borrow().len();
    let allocs = b.device().pool_stats().driver_allocs;
    let got = run(&mut graphs, 2, &a2);
    assert_eq!(bits(&got), bits(&direct[1]), "a replay reads the new input");
    assert_eq!(
        b.device().launches.borrow().len(),
        launches,
        "a replay launches nothing new"
    );
    assert_eq!(b.device().pool_stats().driver_allocs, allocs);
    let got = run(&mut graphs, 4, &b1);
    assert_eq!(bits(&got), bits(&direct[2]));
    assert_eq!(
        (graphs.captures(), graphs.replays()),
        (2, 3),
        "a second shape, a second graph"
    );
    // The second graph's buffers are not the first's: replaying the first is still right.
    let got = run(&mut graphs, 2, &a3);
    assert_eq!(bits(&got), bits(&direct[3]));
    assert_eq!(graphs.captures(), 2);
    for d in &direct {
        assert_finite(d);
    }
}

#[test]
fn a_capture_refuses_what_a_graph_cannot_hold() {
    let b = emu::backend();
    let dev = b.device();
    dev.begin_capture().unwrap();
    assert!(
        b.alloc_buf(1000).is_err(),
        "no driver allocation while capturing"
    );
    assert!(b.upload(&[1.0]).is_err());
    assert!(dev.record(Stream::Compute).is_err());
    assert!(dev.begin_capture().is_err());
    let graph = dev.end_capture().unwrap();
    dev.replay(&graph).unwrap();
    assert!(dev.end_capture().is_err());
    assert!(b.alloc_buf(1000).is_ok());
}

/// `Network::explain` runs each shape of work as one captured graph, replayed for later batches
/// of that shape with their own pixels and targets: the results equal those of the same backend
/// without graphs, bit for bit; the `innvestigate` preset, whose heads are made on the host,
/// runs without one.
#[test]
fn explanations_replay_one_graph_per_shape() {
    let model = Model::load(common::fixtures().join("small_vgg.model.safetensors")).unwrap();
    let net = Network::new(emu::backend(), &model).unwrap();
    let mut plain = emu::backend();
    plain.set_graphs(false);
    let plain = Network::new(plain, &model).unwrap();
    let mut rng = Rng::new(SEED + 4);
    let per_image = model.input_side * model.input_side * 3;
    let requests = |class: usize| {
        vec![
            Request::new(Method::Sglrp, Target::Rank(1)),
            Request::new(Method::Clrp, Target::Class(class)),
            Request::new(Method::GuidedGradCam, Target::Rank(2)),
        ]
    };
    let maps = |results: &[sglrp::explain::ImageResult]| -> Vec<Vec<u32>> {
        let mut v = Vec::new();
        for r in results {
            v.push(r.logits.iter().map(|x| x.to_bits()).collect());
            for e in &r.explanations {
                v.push(e.relevance.iter().map(|x| x.to_bits()).collect());
                v.push(vec![e.target as u32]);
            }
        }
        v
    };
    // A key's first batch runs without a graph, the second captures it.
    let batches = [
        (2, 3, 0, 0),
        (2, 5, 1, 1),
        (2, 7, 1, 2),
        (3, 3, 1, 2),
        (2, 0, 1, 3),
    ];
    for (n, class, captures, replays) in batches {
        let x = rng.vec(n * per_image, 0.0, 1.0);
        let lists: Vec<Vec<Request>> = (0..n).map(|i| requests((class + i) % 10)).collect();
        let got = net.explain(&x, &lists, Preset::Zennit).unwrap();
        let want = plain.explain(&x, &lists, Preset::Zennit).unwrap();
        assert_eq!(maps(&got), maps(&want), "batch of {n}, class {class}");
        assert_eq!(got[1].explanations[1].target, (class + 1) % 10);
        assert_eq!(net.backend().graph_counts(), (captures, replays));
    }
    let x = rng.vec(2 * per_image, 0.0, 1.0);
    let lists = vec![requests(1); 2];
    let got = net.explain(&x, &lists, Preset::Innvestigate).unwrap();
    let want = plain.explain(&x, &lists, Preset::Innvestigate).unwrap();
    assert_eq!(maps(&got), maps(&want));
    assert_eq!(
        net.backend().graph_counts(),
        (1, 3),
        "no graph for host heads"
    );
    assert_eq!(plain.backend().graph_counts(), (0, 0));
}

/// Batches started before the one before them is finished (`explain_start` / `explain_finish`,
/// as the batch loop runs them) give the results of one batch at a time, whatever the order
/// the emulator runs the copy streams in, and with sizes that change from batch to batch.
#[test]
fn overlapped_explanations_equal_one_batch_at_a_time() {
    let model = Model::load(common::fixtures().join("small_vgg.model.safetensors")).unwrap();
    let mut rng = Rng::new(SEED + 5);
    let per_image = model.input_side * model.input_side * 3;
    let requests = [
        Request::new(Method::Sglrp, Target::Rank(1)),
        Request::new(Method::Gradient, Target::Rank(2)),
    ];
    let batches: Vec<Vec<f32>> = [2, 2, 3, 1, 2]
        .iter()
        .map(|n| rng.vec(n * per_image, 0.0, 1.0))
        .collect();
    let lists = |x: &[f32]| vec![requests.to_vec(); x.len() / per_image];
    let plain = Network::new(emu::backend(), &model).unwrap();
    let want: Vec<_> = batches
        .iter()
        .map(|x| plain.explain(x, &lists(x), Preset::Zennit).unwrap())
        .collect();
    for schedule in [Schedule::Late, Schedule::UploadsEarly] {
        let b = emu::backend();
        b.device().set_schedule(schedule);
        let net = Network::new(b, &model).unwrap();
        let mut started = std::collections::VecDeque::new();
        let mut got = Vec::new();
        for x in &batches {
            started.push_back(net.explain_start(x, &lists(x), Preset::Zennit).unwrap());
            if started.len() > 1 {
                got.push(net.explain_finish(started.pop_front().unwrap()).unwrap());
            }
        }
        got.extend(started.into_iter().map(|p| net.explain_finish(p).unwrap()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            for (a, b) in g.iter().zip(w) {
                assert_eq!(a.logits, b.logits, "batch {i} ({schedule:?})");
                for (ea, eb) in a.explanations.iter().zip(&b.explanations) {
                    assert_eq!(ea.relevance, eb.relevance, "batch {i} ({schedule:?})");
                }
            }
        }
    }
}
