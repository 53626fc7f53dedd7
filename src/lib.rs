//! inquiryd serves Rocket.Chat's `GET /api/v1/livechat/inquiries.getOne` offline, from one SQLite
//! file, with Rocket.Chat's own wire format. It keeps its own users, login tokens, roles and role
//! permissions ([`auth`], [`db`]), answers in Rocket.Chat's shapes ([`api`]), and applies
//! declarative JSON plugin hooks that enrich or redact responses, reloaded live ([`plugins`]).
//! [`app`] assembles the server from a [`config::Config`], with [`conn`]'s deadlines on every stage
//! of a connection and its connection limit; [`cli`] is the command line, whose operations
//! (backup and restore in [`db::backup`], [`import`], [`export`]) write files through [`newfile`].

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
pub mod db;
pub mod document;
pub mod export;
pub mod import;
pub mod metrics;
pub mod model;
pub mod newfile;
pub mod observe;
pub mod periodic;
pub mod plugins;
pub mod regular;
pub mod text;
