//! One integration-test binary (fewer links on two cores): the two binaries
//! driven as a user would, and the library on every store.

mod airflow;
mod analysts;
mod analysts_py;
mod bad_input;
mod cli;
mod common;
mod cron;
mod fisher;
mod ledger;
mod logs;
mod market;
mod plot;
mod policy;
mod recovery;
mod s3;
mod s3server;
mod simulate;
mod stores;
