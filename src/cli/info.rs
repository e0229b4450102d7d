//! `sglrp info`: the model's layers, shapes, parameters and FLOPs, its pre-processing and
//! classes, and the devices found.
//!
//! FLOPs as `sglrp::model::layer_costs` counts them.

use sglrp::model::{Channels, Dims, LayerCost, Model, Resize, layer_costs};

use sglrp::backend::open::{DeviceId, Opened};
use sglrp::backend::{Precision, kernel_lines};

use super::device::Device;
use super::{EXIT_OK, InfoArgs, device, load_model, print_or_exit};

/// One line of the report into `o` (written out at once, so that a closed stdout is one error).
macro_rules! say {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($arg:tt)*) => {{
        $o.push_str(&format!($($arg)*));
        $o.push('\n');
    }};
}

pub fn run(args: InfoArgs) -> u8 {
    let (path, model) = match load_model(args.model.as_deref(), None) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut o = String::new();
    let costs = layer_costs(&model.specs(), &model.dims());
    let dims = model.dims();
    let names = model.layer_names();
    say!(o, "model     {}", path.display());
    if !model.name.is_empty() {
        say!(o, "name      {}", model.name);
    }
    let side = model.input_side;
    say!(o, "input     {side}×{side}×3");
    say!(o, "preproc.  {}", describe_preprocess(&model));
    say!(o);
    say!(
        o,
        "{:<4} {:<10} {:<10} {:>14} {:>14} {:>12}",
        "#",
        "layer",
        "kind",
        "output",
        "parameters",
        "MFLOP fwd"
    );
    for (i, ((layer, (_, out)), cost)) in model.layers.iter().zip(&dims).zip(&costs).enumerate() {
        say!(
            o,
            "{:<4} {:<10} {:<10} {:>14} {:>14} {:>12}",
            i,
            names[i],
            layer.spec().to_string(),
            shape(out),
            group(cost.params),
            format!("{:.1}", cost.forward as f64 / 1e6),
        );
    }
    let total = |f: fn(&LayerCost) -> u64| costs.iter().map(f).sum::<u64>();
    let (params, forward) = (total(|c| c.params), total(|c| c.forward));
    let explanation = forward + total(|c| c.denominator) + total(|c| c.transpose);
    let further = total(|c| c.transpose);
    say!(o);
    say!(o, "parameters                          {}", group(params));
    say!(o, "FLOPs per image, forward pass       {}", flops(forward));
    say!(
        o,
        "FLOPs per explanation               {} (forward + z⁺ denominators + transposed products: {:.1}× the forward pass)",
        flops(explanation),
        explanation as f64 / forward.max(1) as f64
    );
    say!(
        o,
        "  each further method or target     +{} (×2 with --preset innvestigate)",
        flops(further)
    );
    say!(o);
    let n = model.classes.len();
    let shown = if args.classes { n } else { n.min(20) };
    say!(o, "classes   {n}");
    for (i, name) in model.classes[..shown].iter().enumerate() {
        say!(o, "  {i:>4}  {name}");
    }
    if shown < n {
        say!(o, "  … {} more (--classes lists them all)", n - shown);
    }
    say!(o);
    say!(o, "devices");
    let threads = match device::check_threads(args.threads) {
        Ok(t) => t,
        Err(e) => {
            super::report(e);
            return super::EXIT_USAGE;
        }
    };
    match Opened::open(DeviceId::Cpu, threads) {
        Ok(cpu) => say!(
            o,
            "  cpu     {} (available: {} cores)",
            cpu.caps().hardware,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        Err(e) => say!(o, "  cpu     unavailable: {e}"),
    }
    let cuda = device::cuda_status();
    say!(o, "  cuda    {cuda}");
    if cuda.starts_with("available") {
        for n in 0.. {
            let Ok(gpu) = Opened::open(DeviceId::Cuda(n), None) else {
                break;
            };
            let caps = gpu.caps();
            let peak = caps
                .peak("f32")
                .map_or("peak unknown".into(), |t| format!("f32 peak {t} TFLOP/s"));
            say!(
                o,
                "  {:<7} {}, {peak}, batch {} by default",
                caps.name,
                caps.hardware,
                caps.preferred_batch
            );
        }
    }
    say!(o);
    match kernels(&args.device, threads, args.precision) {
        Ok(text) => o.push_str(&text),
        Err(e) => say!(o, "kernels   unavailable: {e}"),
    }
    if let Err(code) = print_or_exit(&o) {
        return code;
    }
    EXIT_OK
}

/// What runs each op on the first device of `device` at `precision`: a header line, then one
/// line per op (with the backend's note when the precision is not honoured).
fn kernels(
    device: &Device,
    threads: Option<usize>,
    precision: Precision,
) -> Result<String, String> {
    let id = device.resolve()?[0];
    let mut opened = Opened::open(id, threads)?;
    let note = opened.set_precision(precision);
    let mut o = format!("kernels on {id} at --precision {precision}\n");
    if let Some(note) = note {
        say!(o, "  note: {note}");
    }
    o.push_str(&kernel_lines(&opened.kernels()));
    Ok(o)
}

fn describe_preprocess(model: &Model) -> String {
    let p = &model.preprocess;
    let channels = match p.channels {
        Channels::Rgb => "RGB",
        Channels::Bgr => "BGR",
    };
    let resize = match p.resize {
        Resize::Direct => format!("resize to {0}×{0}", model.input_side),
        Resize::Crop => format!(
            "shorter side to {}, centre crop {1}×{1}",
            (model.input_side as f64 * 256.0 / 224.0).round(),
            model.input_side
        ),
    };
    let name = match p.to_metadata().as_str() {
        "torchvision" => "torchvision: ",
        "caffe" => "caffe: ",
        _ => "",
    };
    format!(
        "{name}{resize}; {channels}; x = (pixel·{} − mean) / std, mean ({}), std ({})",
        trim(p.scale),
        p.mean.map(trim).join(", "),
        p.std.map(trim).join(", ")
    )
}

/// A float without trailing noise: 0.003921569 → "0.0039215", 1 → "1".
fn trim(v: f32) -> String {
    let s = format!("{v:.7}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 30_950_000_000 → "30.95 GFLOP"; below 10⁹ in MFLOP.
fn flops(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} GFLOP", n as f64 / 1e9)
    } else {
        format!("{:.2} MFLOP", n as f64 / 1e6)
    }
}

fn shape(d: &Dims) -> String {
    d.to_string()
}

/// 138357544 → "138,357,544".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted() {
        assert_eq!(group(138_357_544), "138,357,544");
        assert_eq!(group(12), "12");
        assert_eq!(trim(1.0 / 255.0), "0.0039216");
    }
}
