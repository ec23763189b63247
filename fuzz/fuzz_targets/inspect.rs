//! `signet inspect`'s decoder (`signet_ca::inspect`): any bytes, PEM or DER, certificate,
//! CSR, CRL or OCSP response. It must never panic, and whatever it describes must encode as
//! JSON (what `--json` prints).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(objects) = signet_ca::inspect(data) {
        assert!(!objects.is_empty(), "success means at least one object");
        serde_json::to_string(&objects).expect("every description encodes as JSON");
    }
});
