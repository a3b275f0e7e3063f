//! `vgpu`: the command-line front end of the stack.

use clap::Parser;

fn main() {
    // Installed as libexec/vgpu-vhost-user-gpu, vgpu is libvirt's vhost-user GPU backend.
    let args = vmm::cli::install::args_with_alias(std::env::args_os().collect());
    let cli = vmm::cli::Cli::parse_from(args);
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
