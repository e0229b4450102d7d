//! `sglrp merge OUT`: the shards' records in `OUT` (see [`sglrp::cluster::merge`]) turned into
//! what one process would have written there.

use std::fmt::Write as _;
use std::path::Path;

use sglrp::cluster::merge::{merge_eval, merge_explain};
use sglrp::eval::report::write_results;

use super::{EXIT_OK, EXIT_USAGE, MergeArgs, print_or_exit, report};

pub fn run(args: MergeArgs) -> u8 {
    let out = &args.out;
    if !out.is_dir() {
        report(format!("{}: no such output folder", out.display()));
        return EXIT_USAGE;
    }
    let mut said = String::new();
    let merged = merge(out, &mut said);
    // What was merged is told even when a later part fails; a closed stdout is no failure.
    let printed = if args.quiet {
        Ok(())
    } else {
        print_or_exit(&said)
    };
    match merged {
        Err(e) => {
            report(e);
            EXIT_USAGE
        }
        Ok(()) => printed.err().unwrap_or(EXIT_OK),
    }
}

/// Merges the eval and the explain shards in `out`, writing to `said` what was merged.
fn merge(out: &Path, said: &mut String) -> Result<(), String> {
    let mut merged_any = false;
    if let Some(run) = merge_eval(out)? {
        let table = write_results(
            out,
            run.scores,
            run.skipped,
            &run.patch_sizes,
            &run.energies,
        )
        .map_err(|e| e.to_string())?;
        let _ = writeln!(
            said,
            "merged {} eval shards in {}",
            run.shards,
            out.display()
        );
        said.push_str(&table);
        merged_any = true;
    }
    if let Some(shards) = merge_explain(out)? {
        let summary = out.join("summary.jsonl");
        let _ = writeln!(
            said,
            "merged {shards} explain shards into {}",
            summary.display()
        );
        merged_any = true;
    }
    if !merged_any {
        return Err(format!(
            "{}: no shard records to merge (eval_shard.K-of-N.json or summary.K-of-N.jsonl); \
             run eval or explain with --shard K/N and --out {} first",
            out.display(),
            out.display()
        ));
    }
    Ok(())
}
