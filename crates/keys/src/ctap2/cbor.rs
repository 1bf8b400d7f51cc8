//! Reading CTAP2 request maps and writing canonical CBOR answers.

use super::status;
use ciborium::value::Value;

pub(super) type Map = Vec<(Value, Value)>;
pub(super) type Answer = std::result::Result<Option<Value>, u8>;

pub(super) fn int(n: i64) -> Value {
    Value::from(n)
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

pub(super) fn get(map: &Map, key: i128) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| k.as_integer().map(i128::from) == Some(key))
        .map(|(_, v)| v)
}

pub(super) fn get_text<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

pub(super) fn bytes(map: &Map, key: i128) -> std::result::Result<Option<Vec<u8>>, u8> {
    match get(map, key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b.clone())),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

pub(super) fn required_bytes(map: &Map, key: i128) -> std::result::Result<Vec<u8>, u8> {
    bytes(map, key)?.ok_or(status::MISSING_PARAMETER)
}

pub(super) fn uint(map: &Map, key: i128) -> std::result::Result<Option<i128>, u8> {
    match get(map, key) {
        None => Ok(None),
        Some(Value::Integer(i)) => Ok(Some(i128::from(*i))),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

pub(super) fn text_field(v: &Value, key: &str) -> std::result::Result<Option<String>, u8> {
    let m = v.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    match get_text(m, key) {
        None => Ok(None),
        Some(Value::Text(t)) => Ok(Some(t.clone())),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

pub(super) fn option(map: &Map, key: i128, name: &str) -> std::result::Result<Option<bool>, u8> {
    let Some(opts) = get(map, key) else {
        return Ok(None);
    };
    let opts = opts.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    match get_text(opts, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
    }
}

/// Credential ids from an allow or exclude list of PublicKeyCredentialDescriptors.
pub(super) fn descriptor_ids(v: Option<&Value>) -> std::result::Result<Vec<Vec<u8>>, u8> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
    list.iter()
        .map(|d| {
            let m = d.as_map().ok_or(status::CBOR_UNEXPECTED_TYPE)?;
            match get_text(m, "id") {
                Some(Value::Bytes(b)) => Ok(b.clone()),
                Some(_) => Err(status::CBOR_UNEXPECTED_TYPE),
                None => Err(status::MISSING_PARAMETER),
            }
        })
        .collect()
}

pub(super) fn descriptor(id: &[u8]) -> Value {
    Value::Map(vec![
        (text("id"), Value::Bytes(id.to_vec())),
        (text("type"), text("public-key")),
    ])
}

/// CTAP2 canonical CBOR (CTAP 2.1 §8): map keys sorted by the length of their encoding, then
/// bytewise. Strict clients (libfido2) refuse anything else.
pub(super) fn canonical(v: Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| {
                    let k = canonical(k);
                    (encode(&k), k, canonical(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

pub(super) use crate::config::encode;
