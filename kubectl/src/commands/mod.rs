//! One module per command: its arguments (a clap `Args` struct) and `run(ctx, args)`, which
//! resolves them into requests against the API server and prints what kubectl prints.

pub mod apply;
pub mod create;
pub mod delete;
pub mod describe;
pub mod get;
pub mod logs;
pub mod scale;
