//! The sheets an issuing station prints (PDF, A4, the PDF's built-in Helvetica): a handover
//! sheet per person (which key, what to do first, until when) and, for separate delivery, a
//! PIN sheet per key that carries the PIN, the key it opens and the name it is delivered to,
//! nothing else.

use std::path::{Path, PathBuf};

use keywarden_agent::issuing::IssuedKey;
use keywarden_agent::keys::KeyInfo;
use keywarden_protocol::{IssuePerson, PersonSummary};
use printpdf::{
    BuiltinFont, IndirectFontRef, Mm, PdfDocument, PdfDocumentReference, PdfLayerReference,
};

/// The day of a unix time in ms, `2026-12-19` (UTC).
pub(crate) fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "(unknown date)".to_owned())
}

/// How a key is named on paper: its serial where the key id carries it, else its label with
/// the station's id for it.
fn key_name(key: &KeyInfo) -> String {
    match key.id.strip_prefix("hid:") {
        Some(serial) if key.id_from_serial == Some(true) => format!("serial {serial}"),
        _ => format!("{} ({})", key.label, key.id),
    }
}

/// The key's model, where known.
fn model(key: &KeyInfo) -> String {
    key.model.clone().unwrap_or_else(|| key.label.clone())
}

/// Text for the built-in font, which has no glyphs outside Latin-1: anything else becomes `?`.
fn latin1(text: &str) -> String {
    text.chars()
        .map(|c| if u32::from(c) < 256 { c } else { '?' })
        .collect()
}

/// One page being written top to bottom.
struct Page {
    doc: PdfDocumentReference,
    layer: PdfLayerReference,
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    y: f32,
}

impl Page {
    fn new(title: &str) -> anyhow::Result<Page> {
        let (doc, page, layer) = PdfDocument::new(latin1(title), Mm(210.0), Mm(297.0), "sheet");
        let regular = doc.add_builtin_font(BuiltinFont::Helvetica)?;
        let bold = doc.add_builtin_font(BuiltinFont::HelveticaBold)?;
        let layer = doc.get_page(page).get_layer(layer);
        Ok(Page {
            doc,
            layer,
            regular,
            bold,
            y: 270.0,
        })
    }

    /// A line of `size` points, bold or not, then down by a line's height.
    fn line(&mut self, text: &str, size: f32, bold: bool) {
        let font = if bold { &self.bold } else { &self.regular };
        self.layer
            .use_text(latin1(text), size, Mm(20.0), Mm(self.y), font);
        self.y -= size * 0.55;
    }

    /// Empty space of `mm`.
    fn gap(&mut self, mm: f32) {
        self.y -= mm;
    }

    fn save(self, file: &Path) -> anyhow::Result<PathBuf> {
        let bytes = self.doc.save_to_bytes()?;
        std::fs::write(file, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        Ok(file.to_owned())
    }
}

/// A file-name-safe form of a user name.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn file_stem(person: &IssuePerson) -> String {
    format!("{:03}-{}", person.row, slug(&person.person.user_name))
}

/// The handover sheet of one person: their keys and what to do first.
pub(crate) fn write_handover_sheet(
    out: &Path,
    person: &IssuePerson,
    keys: &[IssuedKey],
    staff: &PersonSummary,
) -> anyhow::Result<PathBuf> {
    let mut p = Page::new("Your security key")?;
    p.line(
        if keys.len() == 1 {
            "Your security key"
        } else {
            "Your security keys"
        },
        24.0,
        true,
    );
    p.gap(4.0);
    p.line(
        &format!(
            "For: {} ({})",
            person.person.display_name, person.person.user_name
        ),
        13.0,
        false,
    );
    if let Some(first) = keys.first() {
        p.line(
            &format!(
                "Issued by IT ({}) on {}",
                staff.display_name,
                date(first.result.credential.created_at_ms)
            ),
            11.0,
            false,
        );
    }
    p.gap(6.0);
    for (i, k) in keys.iter().enumerate() {
        p.line(&format!("Key {}: {}", i + 1, model(&k.key)), 14.0, true);
        p.line(
            &format!("Serial or label: {}", key_name(&k.key)),
            11.0,
            false,
        );
        p.gap(3.0);
    }
    p.gap(4.0);
    p.line("What to do first", 16.0, true);
    p.gap(1.0);
    for step in [
        "1. Plug the key into your laptop.",
        "2. Open Keywarden (or run: keywarden change-pin).",
        "3. Change the PIN: type the PIN from the separate PIN sheet, then choose your own.",
        "4. The key becomes active once the PIN is changed: Keywarden tells the service for you.",
    ] {
        p.line(step, 12.0, false);
    }
    p.gap(6.0);
    if let Some(expires) = keys.iter().map(|k| k.expires_at_ms).min() {
        p.line(
            &format!("Change the PIN before {}.", date(expires)),
            13.0,
            true,
        );
        p.line(
            "A key not activated by then stops working, and IT must issue another.",
            11.0,
            false,
        );
    }
    p.gap(4.0);
    p.line(
        "The PIN comes separately. Keep this sheet and the PIN sheet apart.",
        11.0,
        false,
    );
    p.save(&out.join(format!("{}-handover.pdf", file_stem(person))))
}

/// The PIN sheet of one key (the person's key number `n`).
pub(crate) fn write_pin_sheet(
    out: &Path,
    person: &IssuePerson,
    n: u32,
    key: &IssuedKey,
) -> anyhow::Result<PathBuf> {
    let mut p = Page::new("Security key PIN")?;
    p.line("Security key PIN", 24.0, true);
    p.gap(4.0);
    p.line(
        &format!("Deliver to: {}", person.person.display_name),
        13.0,
        false,
    );
    p.line(&format!("Key: {}", key_name(&key.key)), 13.0, false);
    p.gap(8.0);
    p.line(&format!("PIN: {}", key.pin.reveal()), 28.0, true);
    p.gap(8.0);
    p.line(
        "The key asks you to change this PIN at its first use.",
        12.0,
        false,
    );
    p.line("Destroy this sheet once you have.", 12.0, false);
    p.save(&out.join(format!("{}-pin-{n}.pdf", file_stem(person))))
}
