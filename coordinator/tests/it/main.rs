//! One integration-test binary (fewer links on two cores): the two binaries
//! driven as a user would, and the library on every store.

mod analysts;
mod bad_input;
mod cli;
mod common;
mod fisher;
mod logs;
mod market;
mod policy;
mod recovery;
mod s3;
mod s3server;
mod stores;
