//! `vgpu`: the command-line front end of the stack.

use clap::Parser;

fn main() {
    let cli = vmm::cli::Cli::parse();
    vmm::cli::init_logging(cli.verbose);
    if let Err(err) = vmm::cli::run(cli.command) {
        eprintln!("vgpu: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}
