//! Fuzzes trigger filter parsing and matching: any bytes, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prelabel_dev::fuzzing::filter(data));
