#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| keywarden_fuzz::ctap2_command(data));
