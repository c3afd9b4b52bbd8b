//! Fuzzes the manifest parser and init-value resolution: any bytes, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prelabel_dev::fuzzing::manifest(data));
