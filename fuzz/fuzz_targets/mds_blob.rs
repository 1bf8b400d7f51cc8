#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keywarden_fuzz::mds_blob(data));
