//! `inquiryd`: parse the command line, set up logging, dispatch.

use clap::Parser;

fn main() {
    let cli = inquiryd::cli::Cli::parse();
    let serving = matches!(cli.command, None | Some(inquiryd::cli::Command::Serve(_)));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if serving {
        "info"
    } else {
        "warn"
    }))
    .init();
    std::process::exit(inquiryd::cli::run(cli));
}
