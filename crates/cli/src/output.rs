//! Human-readable output: flush and check-in results, keys, and what to do when none is found.

use keywarden_agent::keys::KeyInfo;

pub(crate) fn print_flush(o: &keywarden_agent::FlushOutcome) {
    for ack in &o.sent {
        println!(
            "  sent {}{}",
            ack.report_id,
            if ack.newly_stored {
                ""
            } else {
                " (already stored; not stored again)"
            }
        );
    }
    for (id, why) in &o.rejected {
        println!("  refused {id}: {why} (kept in outbox/rejected)");
    }
    if o.pending > 0 {
        println!("  {} report(s) still waiting in the outbox", o.pending);
    }
}

pub(crate) fn print_checkin(c: &keywarden_protocol::CheckinStatus) {
    let when =
        |ms: Option<i64>| ms.map_or_else(|| "never".to_owned(), |m| format!("{m} (unix ms)"));
    println!(
        "last check-in: {} ({}){}",
        when(c.last_attempt_at_ms),
        c.last_trigger.as_deref().unwrap_or("none"),
        c.last_error
            .as_deref()
            .map(|e| format!(", failed: {e}"))
            .unwrap_or_default()
    );
    println!("last successful report: {}", when(c.last_success_at_ms));
    println!(
        "check-in every {} s and when a key is plugged in",
        c.interval_seconds
    );
}

pub(crate) fn no_key_message() -> String {
    "no security key found. Plug one in. On Linux, if a key is plugged in but not seen, install \
     the udev rule for FIDO devices (installer/linux/70-keywarden-fido.rules) and re-plug the key."
        .to_owned()
}

pub(crate) fn print_key(k: &KeyInfo) {
    println!("{}", k.id);
    println!(
        "  {}{}",
        k.label,
        k.model
            .as_deref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default()
    );
    println!("  aaguid {}  versions {}", k.aaguid, k.versions.join(","));
    println!(
        "  PIN {}{}",
        if k.pin_set { "set" } else { "not set" },
        k.pin_retries
            .filter(|_| k.pin_set)
            .map(|r| format!(", {r} retries left"))
            .unwrap_or_default()
    );
    if let Some(n) = k.min_pin_length {
        println!("  minimum PIN length {n}");
    }
    if k.options.get("alwaysUv") == Some(&true) {
        println!("  PIN asked for every use (alwaysUv)");
    }
    if k.force_pin_change == Some(true) {
        println!(
            "  asks for a new PIN before it can be used: keywarden change-pin --key {}",
            k.id
        );
    }
    if let Some(n) = k.remaining_discoverable_credentials {
        println!("  {n} discoverable credential slot(s) free");
    }
}
