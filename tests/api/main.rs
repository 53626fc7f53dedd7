//! Black-box tests: the real app on a random port, spoken to over HTTP; the real binary for the CLI.
//! One test binary, one file per feature.

mod cli;
mod crash;
mod db_file;
mod files;
mod first_hour;
mod flood;
mod get_one;
mod helpers;
mod hostile;
mod import;
mod load;
mod login;
mod operations;
mod plugin_inputs;
mod plugins;
mod propagation;
mod python_client;
mod schema;
mod slow_clients;
mod stored_data;
