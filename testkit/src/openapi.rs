//! Checks JSON against Bitbucket's published API spec (Swagger 2.0, a copy of
//! ../shared/bitbucket-openapi.json in testkit/spec/): request bodies
//! commit-back sends and responses the stand-in gives, so both follow the
//! documented shapes. Supports what the spec uses for these endpoints:
//! `$ref`, `allOf`, `type`, `properties`, `required`, `enum`, `items`,
//! `additionalProperties: false`.

use serde_json::Value;
use std::sync::OnceLock;

pub struct Spec {
    doc: Value,
}

static SPEC: OnceLock<Spec> = OnceLock::new();

impl Spec {
    pub fn get() -> &'static Spec {
        SPEC.get_or_init(|| {
            let text = include_str!("../spec/bitbucket-openapi.json");
            Spec {
                doc: serde_json::from_str(text).expect("spec parses"),
            }
        })
    }

    /// The spec's operation for a concrete request path (below `/2.0`).
    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let paths = self.doc["paths"].as_object()?;
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (_, item) = paths.iter().find(|(template, _)| {
            let t: Vec<&str> = template.split('/').collect();
            t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(a, b)| a.starts_with('{') || a == b)
        })?;
        item.get(method.to_ascii_lowercase())
    }

    /// Validates a request body for `method path`; errors as readable strings.
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
        let op = self
            .operation(method, path)
            .ok_or_else(|| vec![format!("{method} {path} is not in the spec")])?;
        let schema = op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
            .map(|p| &p["schema"]);
        let Some(schema) = schema else {
            return Err(vec![format!("{method} {path} takes no body in the spec")]);
        };
        self.check(body, schema)
    }

    /// Validates a response of `status` for `method path`.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), Vec<String>> {
        let op = self
            .operation(method, path)
            .ok_or_else(|| vec![format!("{method} {path} is not in the spec")])?;
        let responses = &op["responses"];
        let resp = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"));
        match (resp, resp.and_then(|r| r.get("schema"))) {
            (_, Some(schema)) => self.check(body, schema),
            // Bitbucket answers undocumented failures with its `error` shape.
            (_, None) if status >= 400 => self.check_definition(body, "error"),
            // Documented without a body schema (a merge's 202, a task status).
            (Some(_), None) => Ok(()),
            (None, None) => Err(vec![format!(
                "{method} {path} has no documented {status} response"
            )]),
        }
    }

    /// Validates against a named definition, e.g. `pullrequest`.
    pub fn check_definition(&self, body: &Value, name: &str) -> Result<(), Vec<String>> {
        self.check(
            body,
            &serde_json::json!({"$ref": format!("#/definitions/{name}")}),
        )
    }

    fn check(&self, value: &Value, schema: &Value) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        self.walk(value, schema, "$", &mut errors, 0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn walk(&self, v: &Value, schema: &Value, at: &str, errors: &mut Vec<String>, depth: usize) {
        if depth > 64 {
            return;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/definitions/");
            match self.doc["definitions"].get(name) {
                Some(def) => self.walk(v, def, at, errors, depth + 1),
                None => errors.push(format!("{at}: unknown $ref {r}")),
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.walk(v, s, at, errors, depth + 1);
            }
        }
        let ty = schema.get("type").and_then(Value::as_str);
        // Swagger 2.0 has no "any" type: the spec writes free-form values as a bare
        // `type: object` (report_data.value, whose own description says it may be
        // a boolean, number or string). Such a schema accepts any JSON value.
        if ty == Some("object")
            && schema.get("properties").is_none()
            && schema.get("allOf").is_none()
            && schema.get("additionalProperties").is_none()
        {
            return;
        }
        let ok = match ty {
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("number") => v.is_number(),
            Some("boolean") => v.is_boolean(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: expected {}, got {v}", ty.unwrap_or("?")));
            return;
        }
        if let (Some(allowed), Some(s)) = (schema.get("enum").and_then(Value::as_array), v.as_str())
            && !allowed.iter().any(|a| a == s)
        {
            errors.push(format!("{at}: '{s}' is not one of {allowed:?}"));
        }
        if let Some(obj) = v.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{at}: missing required '{r}'"));
                    }
                }
            }
            for (k, child) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.walk(child, s, &format!("{at}.{k}"), errors, depth + 1),
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errors.push(format!("{at}: '{k}' is not allowed here"));
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                self.walk(item, items, &format!("{at}[{i}]"), errors, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validator_catches_shape_errors() {
        let spec = Spec::get();
        let good = json!({"type": "pullrequest", "title": "t", "source": {"branch": {"name": "x"}}, "close_source_branch": true});
        assert!(spec.check_definition(&good, "pullrequest").is_ok());
        let bad = json!({"type": "pullrequest", "title": 5, "source": {"branch": {"nom": "x"}}});
        let errors = spec.check_definition(&bad, "pullrequest").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("$.title")), "{errors:?}");
        assert!(
            errors.iter().any(|e| e.contains("'nom' is not allowed")),
            "{errors:?}"
        );
        assert!(
            spec.check_definition(&json!({"title": "no type"}), "pullrequest")
                .is_err()
        );
        let report = json!({"type": "report", "title": "x", "result": "MAYBE"});
        assert!(spec.check_definition(&report, "report").unwrap_err()[0].contains("MAYBE"));
    }

    #[test]
    fn paths_are_matched_to_templates() {
        let spec = Spec::get();
        let body =
            json!({"type": "pullrequest", "title": "t", "source": {"branch": {"name": "x"}}});
        assert!(
            spec.check_request("POST", "/repositories/ws/repo/pullrequests", &body)
                .is_ok()
        );
        assert!(
            spec.check_request("POST", "/repositories/ws/repo/nothing-here", &body)
                .is_err()
        );
    }
}
