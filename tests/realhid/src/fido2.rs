//! fido2-token, the independent client.

use std::process::Command;

use anyhow::{anyhow, ensure, Result};
use keywarden_keys::KeyInfo;

/// hidraw paths fido2-token lists with their product names.
pub(crate) fn fido2_list() -> Result<Vec<(String, String)>> {
    let out = Command::new("fido2-token").arg("-L").output()?;
    ensure!(
        out.status.success(),
        "fido2-token -L failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (path, rest) = l.split_once(": ")?;
            Some((path.to_owned(), rest.to_owned()))
        })
        .collect())
}

/// Compare `fido2-token -I` on `path` with what the agent's hid backend reports.
pub(crate) fn fido2_matches(path: &str, info: &KeyInfo) -> Result<()> {
    let out = Command::new("fido2-token").args(["-I", path]).output()?;
    ensure!(
        out.status.success(),
        "fido2-token -I {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> Result<Vec<String>> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .ok_or_else(|| anyhow!("fido2-token -I has no `{name}` line:\n{text}"))?;
        Ok(line.split(", ").map(|s| s.trim().to_owned()).collect())
    };
    let versions = field("version strings")?;
    ensure!(
        versions == info.versions,
        "versions: fido2-token {versions:?}, agent {:?}",
        info.versions
    );
    let protocols: Vec<u32> = field("pin protocols")?
        .iter()
        .map(|p| p.parse())
        .collect::<std::result::Result<_, _>>()?;
    ensure!(
        protocols == info.pin_protocols,
        "pin protocols: fido2-token {protocols:?}, agent {:?}",
        info.pin_protocols
    );
    let options = field("options")?;
    for (name, on) in &info.options {
        let shown = if *on {
            name.clone()
        } else {
            format!("no{name}")
        };
        ensure!(
            options.contains(&shown),
            "option {name}={on}: fido2-token shows {options:?}"
        );
    }
    ensure!(
        options.len() == info.options.len(),
        "options: fido2-token {options:?}, agent {:?}",
        info.options
    );
    let aaguid = field("aaguid")?.join("");
    ensure!(
        aaguid == info.aaguid.replace('-', ""),
        "aaguid: fido2-token {aaguid}, agent {}",
        info.aaguid
    );
    Ok(())
}

pub(crate) fn fido2_check_new(seen: &mut Vec<String>, info: &KeyInfo) -> Result<()> {
    let listed = fido2_list()?;
    let (path, product) = listed
        .iter()
        .find(|(p, _)| !seen.contains(p))
        .ok_or_else(|| anyhow!("fido2-token -L does not list the new key: {listed:?}"))?;
    // libfido2 reads product strings from a USB parent device, which a uhid device has not.
    ensure!(
        product.contains("vendor=0x1209, product=0x0001"),
        "fido2-token -L: {product}"
    );
    fido2_matches(path, info)?;
    seen.push(path.clone());
    Ok(())
}
