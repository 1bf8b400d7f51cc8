#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keywarden_fuzz::scim_filter(data));
