//! The attribute catalogue of the resources (RFC 7643 sections 4.1 to 4.3): every core User
//! attribute, the enterprise extension and the Group attributes, with their sub-attributes.
//! It refuses a body or a PATCH path naming an attribute the schema does not have
//! (`invalidPath`), gives every attribute its canonical spelling (names are case-insensitive),
//! and checks the shape (simple, complex, multi-valued) of what it keeps.

use serde_json::{Map, Value};

use super::errors::{ScimError, ScimResult};
use super::{ENTERPRISE_SCHEMA, USER_SCHEMA};

/// One attribute: its name, its sub-attributes (empty for a simple attribute) and whether it
/// is multi-valued.
#[derive(Debug)]
pub(super) struct Attr {
    pub(super) name: &'static str,
    pub(super) subs: &'static [&'static str],
    pub(super) multi: bool,
}

const fn simple(name: &'static str) -> Attr {
    Attr {
        name,
        subs: &[],
        multi: false,
    }
}

const fn complex(name: &'static str, subs: &'static [&'static str]) -> Attr {
    Attr {
        name,
        subs,
        multi: false,
    }
}

const fn multi(name: &'static str, subs: &'static [&'static str]) -> Attr {
    Attr {
        name,
        subs,
        multi: true,
    }
}

const PLURAL: &[&str] = &["value", "display", "type", "primary", "$ref"];
const META: &[&str] = &[
    "resourceType",
    "created",
    "lastModified",
    "location",
    "version",
];

/// The attributes of a resource type, and its extension (URN and attributes) if it has one.
#[derive(Debug)]
pub(super) struct ResourceSchema {
    /// `User` or `Group`, for messages.
    pub(super) kind: &'static str,
    /// Core attributes, including the common ones (`id`, `externalId`, `meta`, `schemas`).
    pub(super) core: &'static [Attr],
    /// The extension's URN and attributes.
    pub(super) extension: Option<(&'static str, &'static [Attr])>,
}

/// Core User (RFC 7643 section 4.1) with the enterprise extension (section 4.3).
pub(super) static USER: ResourceSchema = ResourceSchema {
    kind: "User",
    core: &[
        simple("id"),
        simple("externalId"),
        complex("meta", META),
        multi("schemas", &[]),
        simple("userName"),
        complex(
            "name",
            &[
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            ],
        ),
        simple("displayName"),
        simple("nickName"),
        simple("profileUrl"),
        simple("title"),
        simple("userType"),
        simple("preferredLanguage"),
        simple("locale"),
        simple("timezone"),
        simple("active"),
        simple("password"),
        multi("emails", PLURAL),
        multi("phoneNumbers", PLURAL),
        multi("ims", PLURAL),
        multi("photos", PLURAL),
        multi(
            "addresses",
            &[
                "formatted",
                "streetAddress",
                "locality",
                "region",
                "postalCode",
                "country",
                "type",
                "primary",
                "display",
            ],
        ),
        multi("groups", PLURAL),
        multi("entitlements", PLURAL),
        multi("roles", PLURAL),
        multi("x509Certificates", PLURAL),
    ],
    extension: Some((
        ENTERPRISE_SCHEMA,
        &[
            simple("employeeNumber"),
            simple("costCenter"),
            simple("organization"),
            simple("division"),
            simple("department"),
            complex("manager", &["value", "$ref", "displayName"]),
        ],
    )),
};

/// Core Group (RFC 7643 section 4.2).
pub(super) static GROUP: ResourceSchema = ResourceSchema {
    kind: "Group",
    core: &[
        simple("id"),
        simple("externalId"),
        complex("meta", META),
        multi("schemas", &[]),
        simple("displayName"),
        multi("members", &["value", "display", "type", "$ref"]),
    ],
    extension: None,
};

fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn no_such(schema: &ResourceSchema, what: &str) -> ScimError {
    ScimError::bad(
        "invalidPath",
        format!(
            "{what} is not an attribute of the {} schema; remove it or map it to one",
            schema.kind
        ),
    )
}

impl ResourceSchema {
    /// The attribute `name` (with `sub`, if given) in the core schema, or in the extension when
    /// `extension` is set; `invalidPath` when there is no such attribute.
    pub(super) fn check(
        &self,
        extension: bool,
        name: &str,
        sub: Option<&str>,
    ) -> ScimResult<&'static Attr> {
        let attrs: &'static [Attr] = match (extension, self.extension) {
            (false, _) => self.core,
            (true, Some((_, attrs))) => attrs,
            (true, None) => return Err(no_such(self, name)),
        };
        let attr = find(attrs, name).ok_or_else(|| no_such(self, name))?;
        if let Some(s) = sub {
            if !attr.subs.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                return Err(no_such(self, &format!("{}.{s}", attr.name)));
            }
        }
        Ok(attr)
    }

    /// The resource with every attribute checked against the schema and spelled canonically;
    /// `invalidPath` for an attribute the schema does not have, `invalidValue` for a value of
    /// the wrong shape. Unknown extension URNs are refused too.
    pub(super) fn canonical(&self, resource: &Value) -> ScimResult<Map<String, Value>> {
        let obj = resource.as_object().ok_or_else(|| {
            ScimError::bad(
                "invalidSyntax",
                format!("a {} must be a JSON object", self.kind),
            )
        })?;
        let mut out = Map::new();
        for (k, v) in obj {
            if let Some((urn, attrs)) = self.extension.filter(|(u, _)| u.eq_ignore_ascii_case(k)) {
                let inner = match v {
                    Value::Null => continue,
                    Value::Object(m) => m,
                    _ => {
                        return Err(ScimError::bad(
                            "invalidValue",
                            "the enterprise extension must be an object",
                        ))
                    }
                };
                let mut ext = Map::new();
                for (ik, iv) in inner {
                    let attr =
                        find(attrs, ik).ok_or_else(|| no_such(self, &format!("{urn}:{ik}")))?;
                    ext.insert(attr.name.to_owned(), shaped(self, attr, iv)?);
                }
                out.insert(urn.to_owned(), Value::Object(ext));
            } else if k.eq_ignore_ascii_case(USER_SCHEMA) {
                // A core attribute nested under its own schema URN (rare, but allowed).
                let nested = self.canonical(v)?;
                out.extend(nested);
            } else {
                let attr = find(self.core, k).ok_or_else(|| no_such(self, k))?;
                out.insert(attr.name.to_owned(), shaped(self, attr, v)?);
            }
        }
        Ok(out)
    }
}

/// `v` checked against the shape of `attr`, with sub-attribute names spelled canonically.
fn shaped(schema: &ResourceSchema, attr: &Attr, v: &Value) -> ScimResult<Value> {
    let wrong =
        |what: &str| ScimError::bad("invalidValue", format!("{} must be {what}", attr.name));
    let complex_value = |item: &Value| -> ScimResult<Value> {
        let Value::Object(m) = item else {
            return Err(wrong("made of objects"));
        };
        let mut out = Map::new();
        for (k, v) in m {
            let sub = attr
                .subs
                .iter()
                .find(|s| s.eq_ignore_ascii_case(k))
                .ok_or_else(|| no_such(schema, &format!("{}.{k}", attr.name)))?;
            if v.is_null() {
                continue;
            }
            if v.is_object() || v.is_array() {
                return Err(wrong("made of simple values"));
            }
            let v = match (*sub, v) {
                // Booleans as the strings some IdPs send.
                ("primary", Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => {
                    Value::Bool(true)
                }
                ("primary", Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => {
                    Value::Bool(false)
                }
                _ => v.clone(),
            };
            out.insert((*sub).to_owned(), v);
        }
        Ok(Value::Object(out))
    };
    match (attr.multi, attr.subs.is_empty(), v) {
        (_, _, Value::Null) => Ok(Value::Null),
        (true, true, Value::Array(_)) => Ok(v.clone()),
        (true, false, Value::Array(items)) => Ok(Value::Array(
            items
                .iter()
                .map(complex_value)
                .collect::<ScimResult<Vec<_>>>()?,
        )),
        (true, _, _) => Err(wrong("an array")),
        (false, false, Value::Object(_)) => complex_value(v),
        // A manager given by its id alone, as Entra ID sends it.
        (false, false, Value::String(_)) if attr.subs.contains(&"value") => {
            complex_value(&serde_json::json!({ "value": v }))
        }
        (false, false, _) => Err(wrong("an object")),
        (false, true, Value::Object(_) | Value::Array(_)) => Err(wrong("a single value")),
        (false, true, _) => Ok(v.clone()),
    }
}
