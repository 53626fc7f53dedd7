//! `inquiryd`: parse the command line, set up logging, dispatch.

use clap::Parser;

fn main() {
    let cli = inquiryd::cli::Cli::parse();
    let serving = matches!(cli.command, None | Some(inquiryd::cli::Command::Serve(_)));
    // INQUIRYD_LOG, when set, is the filter RUST_LOG would be (and wins over it).
    let filter_var = if std::env::var_os("INQUIRYD_LOG").is_some() {
        "INQUIRYD_LOG"
    } else {
        env_logger::DEFAULT_FILTER_ENV
    };
    let logger = env_logger::Builder::from_env(
        env_logger::Env::default().filter_or(filter_var, if serving { "info" } else { "warn" }),
    )
    .build();
    let level = logger.filter();
    // Descriptors running out makes actix log an accept error twice a second, and a request it
    // cannot parse is logged as an ERROR: keep the log readable (see the wrapper's doc).
    if log::set_boxed_logger(Box::new(inquiryd::conn::QuietConnectionErrors::new(logger))).is_ok() {
        log::set_max_level(level);
    }
    std::process::exit(inquiryd::cli::run(cli));
}
