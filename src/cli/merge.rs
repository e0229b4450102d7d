//! `sglrp merge OUT`: the shards' records in `OUT` (see [`sglrp::cluster::merge`]) turned into
//! what one process would have written there.

use sglrp::cluster::merge::{merge_eval, merge_explain};
use sglrp::eval::report::write_results;

use super::{EXIT_OK, EXIT_USAGE, MergeArgs, report};

pub fn run(args: MergeArgs) -> u8 {
    let out = &args.out;
    if !out.is_dir() {
        report(format!("{}: no such output folder", out.display()));
        return EXIT_USAGE;
    }
    let mut merged_any = false;
    match merge_eval(out) {
        Ok(Some(run)) => {
            let shards = run.shards;
            match write_results(
                out,
                run.scores,
                run.skipped,
                &run.patch_sizes,
                &run.energies,
            ) {
                Ok(table) if !args.quiet => {
                    println!("merged {shards} eval shards in {}", out.display());
                    print!("{table}");
                }
                Ok(_) => {}
                Err(e) => {
                    report(e);
                    return EXIT_USAGE;
                }
            }
            merged_any = true;
        }
        Ok(None) => {}
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    }
    match merge_explain(out) {
        Ok(Some(shards)) => {
            if !args.quiet {
                println!(
                    "merged {shards} explain shards into {}",
                    out.join("summary.jsonl").display()
                );
            }
            merged_any = true;
        }
        Ok(None) => {}
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    }
    if !merged_any {
        report(format!(
            "{}: no shard records to merge (eval_shard.K-of-N.json or summary.K-of-N.jsonl); \
             run eval or explain with --shard K/N and --out {} first",
            out.display(),
            out.display()
        ));
        return EXIT_USAGE;
    }
    EXIT_OK
}
