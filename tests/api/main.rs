//! Black-box tests: the real app on a random port, spoken to over HTTP; the real binary for the CLI.
//! One test binary, one file per feature.

mod access_log;
mod admin_cli;
mod cli;
mod console;
mod crash;
mod db_file;
mod env_vars;
mod files;
mod first_hour;
mod flood;
mod get_one;
mod helpers;
mod hostile;
mod import;
mod load;
mod login;
mod me;
mod metrics;
mod operations;
mod permissions_routes;
mod personal_tokens;
mod plugin_inputs;
mod plugins;
mod plugins_admin;
mod propagation;
mod python_client;
mod python_tools;
mod read_your_writes;
mod readme;
mod schema;
mod service;
mod slow_clients;
mod stored_data;
mod users_openapi;
mod users_routes;
