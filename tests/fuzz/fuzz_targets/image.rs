//! Fuzzes the detector library's image path (decode, then the OpenCV resize): never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| prelabel_dev::fuzzing::image(data));
