//! One integration-test binary (fewer links on two cores): the two binaries
//! driven as a user would, and the library on every embedded store.

mod bad_input;
mod cli;
mod common;
mod recovery;
mod stores;
