//! The `sglrp` command line: `explain`, `classify` and `info` (see `sglrp --help` and README).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
