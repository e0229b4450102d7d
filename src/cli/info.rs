//! `sglrp info`: the model's layers, shapes, parameters and FLOPs, its pre-processing and
//! classes, and the devices found.
//!
//! FLOPs as `sglrp::model::layer_costs` counts them.

use sglrp::model::{Channels, Dims, LayerCost, Model, Resize, layer_costs};

use super::{EXIT_OK, InfoArgs, device, load_model};

pub fn run(args: InfoArgs) -> u8 {
    let (path, model) = match load_model(args.model.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let costs = layer_costs(&model.specs(), &model.dims());
    let dims = model.dims();
    let names = model.layer_names();
    println!("model     {}", path.display());
    if !model.name.is_empty() {
        println!("name      {}", model.name);
    }
    let side = model.input_side;
    println!("input     {side}×{side}×3");
    println!("preproc.  {}", describe_preprocess(&model));
    println!();
    println!(
        "{:<4} {:<10} {:<10} {:>14} {:>14} {:>12}",
        "#", "layer", "kind", "output", "parameters", "MFLOP fwd"
    );
    for (i, ((layer, (_, out)), cost)) in model.layers.iter().zip(&dims).zip(&costs).enumerate() {
        println!(
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
    println!();
    println!("parameters                          {}", group(params));
    println!("FLOPs per image, forward pass       {}", flops(forward));
    println!(
        "FLOPs per explanation               {} (forward + z⁺ denominators + transposed products: {:.1}× the forward pass)",
        flops(explanation),
        explanation as f64 / forward.max(1) as f64
    );
    println!(
        "  each further method or target     +{} (×2 with --preset innvestigate)",
        flops(further)
    );
    println!();
    let n = model.classes.len();
    let shown = if args.classes { n } else { n.min(20) };
    println!("classes   {n}");
    for (i, name) in model.classes[..shown].iter().enumerate() {
        println!("  {i:>4}  {name}");
    }
    if shown < n {
        println!("  … {} more (--classes lists them all)", n - shown);
    }
    println!();
    println!("devices");
    match device::cpu_backend(args.threads) {
        Ok(cpu) => println!(
            "  cpu     {} threads (available: {} cores)",
            cpu.threads(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        Err(e) => println!("  cpu     unavailable: {e}"),
    }
    println!("  cuda    {}", device::cuda_status());
    EXIT_OK
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
