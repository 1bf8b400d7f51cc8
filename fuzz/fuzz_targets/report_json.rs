#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keywarden_fuzz::report_json(data));
