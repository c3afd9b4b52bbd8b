//! What measures and tests Prelabel, kept out of the product's library: `prelabel bench`'s
//! measurements ([`bench`]), throwaway PostgreSQL servers for the tests and the bench
//! ([`scratch`]), and the entry points the fuzzers drive ([`fuzzing`]).

pub mod bench;
pub mod fuzzing;
pub mod scratch;
