//! Black-box tests: the real app on a random port, spoken to over HTTP; the real binary for the CLI.
//! One test binary, one file per feature.

mod admin_cli;
mod audit;
mod cli;
mod crash;
mod db_file;
mod env_vars;
mod files;
mod flood;
mod get_one;
mod helpers;
mod hostile;
mod import;
mod load;
mod login;
mod permissions_routes;
mod plugin_inputs;
mod plugins;
mod propagation;
mod python_client;
mod read_your_writes;
mod roles_routes;
mod schema;
mod slow_clients;
mod stored_data;
